"""One micro-batch of raw invoice events -> Redis state, scores and dead letters.

Kafka-free, so the consuming loop stays short and the logic is tested without a broker.
Two phases, so the loop can prepare a batch while Redis still applies the previous one:

    prepare: validate -> dead letters | guests (counted) | customers' invoices
             -> the script calls (one pass over each invoice's lines)
             -> which purchases' customers have no first purchase yet (one pipelined read
                of the customers not already seen with one)
             -> score those first purchases (one model call), attach the scores
    store:   apply every invoice with the Lua script (one pipeline)
             -> register scored customers for label maturation, advance the watermarks

Every Redis step is retried until it succeeds (`stream.retry`), and the steps are idempotent,
so the caller may commit the batch's offsets as soon as `store_batch` returned and its outputs
were published.

`prepare` gives the event loop a turn every `TURN_EVERY` invoices. Without them the previous
batch's store waited for the end of this batch's CPU work: the loop writes a pipeline to the
socket only as far as the socket takes it, and reads replies and Kafka's next fetch only when
it runs, so Redis sat idle mid-pipeline and the loop then waited for it (~20 % of its time in
`bench/bench_stream.py`, `store_wait`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from schemas.dead_letter import DeadLetter
from stream.aggregates import LineCategories, event_time, invoice_op
from stream.fast_op import GUEST, op_reader
from stream.retry import Backoff, retry_until_done
from stream.scoring import Scorer
from stream.store import MAX_INVOICE_MONEY, CustomerStore, InvoiceOp
from stream.validate import Invoice, Rejection, validate

log = logging.getLogger(__name__)

#: customers remembered with a stored first purchase (a set of ids, ~100 bytes each); past
#: it the set starts again empty and fills from the reads
MAX_KNOWN_FIRST = 500_000
#: invoices validated (or summed up) between two turns of the event loop: under a millisecond
#: of CPU (decoding ~7 us an invoice, the line pass ~5 us)
TURN_EVERY = 100


@dataclass(slots=True)  # not frozen: its __init__ would cost 3x, and it runs once per record
class RawEvent:
    """A Kafka record as the worker received it."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = 0
    offset: int = 0
    timestamp: float | None = None  # the record's timestamp, epoch s


@dataclass
class Outcome:
    """What a batch produced: (key, JSON) to publish, and counters."""

    scores: list[tuple[str, str]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class Prepared:
    """A validated, scored batch whose state changes are still to be applied."""

    outcome: Outcome
    ops: list[InvoiceOp] = field(default_factory=list)
    sources: list[RawEvent] = field(default_factory=list)  # each op's record, for dead letters
    partitions: dict[int, float] = field(default_factory=dict)
    failures: int = 0  # first purchases the model could not score (dead-lettered)


class BatchProcessor:
    def __init__(
        self,
        store: CustomerStore,
        scorer: Scorer,
        *,
        backoff: Backoff | None = None,
        native: bool = True,
    ) -> None:
        self.store = store
        self.scorer = scorer
        self.line_categories = LineCategories(scorer.category_of, scorer.known_categories)
        #: the native reader (raw bytes -> op), None without it: every invoice then takes
        #: `validate` and `invoice_op`, which also decide whatever the reader leaves to them
        self.read_op = op_reader(self.line_categories, store.keys) if native else None
        self.backoff = backoff or Backoff()
        #: customers seen with a stored first purchase, while the store's `epoch` is
        #: `_with_first_epoch`: a fact that stays true while Redis keeps its state, so their
        #: later purchases need no read (most invoices are a known customer's)
        self._with_first: set[str] = set()
        self._with_first_epoch = store.epoch

    async def process(self, raws: Sequence[RawEvent]) -> Outcome:
        """One batch, start to end: `prepare`, then `store`."""
        return await self.store_batch(await self.prepare(raws))

    async def prepare(self, raws: Sequence[RawEvent]) -> Prepared:
        """Everything before the state changes: validate, read which customers have a first
        purchase, score the new ones, build the script calls. Changes nothing in Redis, so it
        may run while the previous batch is being stored: that batch's first purchases count
        as stored (`store_batch` remembers them as it starts). Should they be scored twice
        (e.g. the batches given out of order), the script keeps the first score only."""
        out = Outcome()
        out.counts["events"] += len(raws)
        read_op = self.read_op
        # in offset order: (record, the decoded invoice, its op), one of the two at least
        invoices: list[tuple[RawEvent, Invoice | None, InvoiceOp | None]] = []
        for i, raw in enumerate(raws, 1):
            if i % TURN_EVERY == 0:
                await asyncio.sleep(0)
            if read_op is not None and raw.value is not None:
                op = read_op(raw.value)
                if op is GUEST:
                    out.counts["guests"] += 1
                    continue
                if op is not None:
                    invoices.append((raw, None, op))
                    continue
            checked = validate(raw.value)
            if isinstance(checked, Rejection):
                self._dead_letter(out, raw, checked.reason, checked.error)
            elif checked.customer_id is None:
                out.counts["guests"] += 1
            else:
                invoices.append((raw, checked, None))
        prepared = Prepared(out)
        if invoices:
            await self._customers(invoices, prepared)
        return prepared

    async def store_batch(self, prepared: Prepared) -> Outcome:
        """Apply the batch's invoices (one pipeline of script calls), collect the scores to
        emit, register the scored customers for maturation; the batch's `Outcome`."""
        out, ops = prepared.outcome, prepared.ops
        if not ops and not prepared.partitions:
            return out
        # Known from here on: every later batch is applied after this one, which stores these
        # first purchases. (The next batch is prepared while this one is applied: it read and
        # scored again the customers who came back at once, ~50 of ~2,970 scorings in a run
        # of the README's benchmark.)
        self._remember_first((op.customer_id for op in ops if op.score_json), self.store.epoch)
        results = await retry_until_done(lambda: self.store.apply(ops), "apply", self.backoff)
        maturing: dict[str, float] = {}
        for op, source, res in zip(ops, prepared.sources, results, strict=True):
            out.counts[res.status] += 1
            if res.status == "overflow":
                if op.score_json:  # remembered as stored above, and it was not
                    self._with_first.discard(op.customer_id)
                self._dead_letter(out, source, "invalid", (
                    f"customer {op.customer_id}'s spend (or a category's) would leave the "
                    "state's 64-bit micro-units; nothing of this invoice was stored"))
                continue
            if res.status in ("first", "dup_first") and res.score_json:
                out.scores.append((op.customer_id, res.score_json))
                # the stored score's due time, known unless an earlier delivery stored it
                maturing[op.customer_id] = op.due or _due(res.score_json)
        watermark = max(op.ts for op in ops) if ops else None
        await retry_until_done(
            lambda: self.store.register(maturing, watermark, prepared.partitions), "register",
            self.backoff,
        )
        return out

    async def _customers(
        self, invoices: list[tuple[RawEvent, Invoice | None, InvoiceOp | None]],
        prepared: Prepared,
    ) -> None:
        out, partitions = prepared.outcome, prepared.partitions
        ops: list[tuple[RawEvent, Invoice | None, InvoiceOp]] = []
        python_path = 0
        for raw, ev, read in invoices:
            if read is not None:  # the native reader's: valid and in range
                ops.append((raw, None, read))
                ts = read.ts
            else:
                assert ev is not None
                python_path += 1
                if python_path % TURN_EVERY == 0:
                    await asyncio.sleep(0)
                try:
                    op = invoice_op(ev, self.line_categories)
                except Exception as exc:  # noqa: BLE001 - e.g. the categoriser raised on a line
                    self._dead_letter(out, raw, "unscorable", f"{type(exc).__name__}: {exc}")
                    ts = event_time(ev.invoiced_at)
                else:
                    ts = op.ts
                    if op.money_in_range():
                        ops.append((raw, ev, op))
                    else:
                        self._dead_letter(out, raw, "invalid", (
                            f"spend {op.spend:.6g} (or a category's) beyond "
                            f"+-{MAX_INVOICE_MONEY:.0e}, the customer state's range for one "
                            "invoice"))
            # per-partition watermarks (the learner matures labels up to their minimum)
            if ts > partitions.get(raw.partition, -1e300):
                partitions[raw.partition] = ts
        with_first, epoch = self._customers_with_first()
        candidates = [op.customer_id for _, _, op in ops
                      if op.kind == "P" and op.customer_id not in with_first]
        known = await retry_until_done(
            lambda: self.store.have_first_purchase(candidates), "read_first_purchases",
            self.backoff,
        )
        self._remember_first((cid for cid, has in known.items() if has), epoch)
        first: dict[str, int] = {}  # customer -> their first purchase's index in ops
        refused: set[int] = set()  # ops whose record the contract refuses after all
        decoded = 0
        for j, (raw, ev, op) in enumerate(ops):  # in offset order: per customer, in time order
            cid = op.customer_id
            # a customer left out of the read is known to have one
            if op.kind != "P" or known.get(cid, True) or cid in first:
                continue
            if ev is None:  # read natively: the feature function takes the decoded invoice
                decoded += 1
                if decoded % TURN_EVERY == 0:
                    await asyncio.sleep(0)
                checked = validate(raw.value)
                if isinstance(checked, Rejection):  # never (tests/stream/test_fast_op.py)
                    log.error("event=fast_op_disagrees offset=%d reason=%s", raw.offset,
                              checked.reason)
                    self._dead_letter(out, raw, checked.reason, checked.error)
                    refused.add(j)
                    continue
                ops[j] = (raw, checked, op)
            first[cid] = j
        events = [ops[j][1] for j in first.values()]
        scored, failed = self.scorer.score(events)
        for j, (raw, _, op) in enumerate(ops):
            if j in refused:
                continue
            cid = op.customer_id
            if first.get(cid) == j:
                if cid in failed:
                    self._dead_letter(out, raw, "unscorable", failed[cid])
                    prepared.failures += 1
                    continue
                s = scored.get(cid)
                if s is not None:
                    op = replace(op, score_json=s.score_json, features_json=s.features_json,
                                 due=s.due)
            prepared.ops.append(op)
            prepared.sources.append(raw)

    def _customers_with_first(self) -> tuple[set[str], int]:
        """The customers known to have a stored first purchase, and the store epoch they hold
        for; emptied when Redis may have lost state since, or when `MAX_KNOWN_FIRST` are kept.
        """
        epoch = self.store.epoch
        if epoch != self._with_first_epoch or len(self._with_first) >= MAX_KNOWN_FIRST:
            self._with_first, self._with_first_epoch = set(), epoch
        return self._with_first, epoch

    def _remember_first(self, customer_ids: Iterable[str], epoch: int) -> None:
        """Keep customers with a stored first purchase (or one applied before any later
        batch), unless Redis may have lost state since `epoch` was read."""
        if epoch == self.store.epoch == self._with_first_epoch:
            self._with_first.update(customer_ids)

    def _dead_letter(self, out: Outcome, raw: RawEvent, reason: str, error: str) -> None:
        dl = DeadLetter.from_raw(
            raw.value or b"", reason=reason, error=error,
            topic=raw.topic, partition=raw.partition, offset=raw.offset,
        )
        out.dead_letters.append((raw.key, dl.model_dump_json()))
        out.counts["dead_letters"] += 1
        out.counts[f"dead_letter:{reason}"] += 1
        log.info("event=dead_letter reason=%s topic=%s partition=%d offset=%d error=%.200s",
                 reason, raw.topic, raw.partition, raw.offset, error)


def _due(score_json: str) -> float:
    """first purchase + horizon (epoch s), from a stored `CustomerScored` JSON."""
    doc = json.loads(score_json)
    at = datetime.fromisoformat(doc["first_purchase_at"])
    return event_time(at + timedelta(days=int(doc["horizon_days"])))
