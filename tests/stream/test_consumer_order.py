"""The scoring loop's batch order without services: the next batch's Redis step overlaps the
previous batch's publish; outputs and committable offsets stay in batch order; `run` on a fake
consumer stops on a failed publish and commits on stop."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from stream.consumer import ScoringLoop
from stream.processor import Outcome, RawEvent
from stream.settings import Settings


class StepRecorder:
    """A processor whose Redis step is logged and instant, for `ScoringLoop._store`."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def store_batch(self, prepared: object) -> Outcome:
        self.log.append(f"store {prepared}")
        return Outcome()


class Gate(asyncio.Event):
    """When batch n's publish may finish; `fail`: it then raises instead."""

    fail = False


def _gates(n: int, *, opened: bool = False, failing: tuple[int, ...] = ()) -> dict[int, Gate]:
    gates = {i: Gate() for i in range(n)}
    for i, gate in gates.items():
        gate.fail = i in failing
        if opened:
            gate.set()
    return gates


def _gated_loop(log: list[str], gates: dict[int, Gate]) -> ScoringLoop:
    """A loop whose publish of batch n waits for `gates[n]`."""
    async def publish(outcome: Outcome) -> None:
        n = len([x for x in log if x.endswith("started")])
        log.append(f"publish {n} started")
        await gates[n].wait()
        if gates[n].fail:
            raise RuntimeError(f"publish {n} failed")
        log.append(f"publish {n} done")

    return ScoringLoop(Settings.from_env(), StepRecorder(log), publish)  # type: ignore[arg-type]


async def test_the_next_redis_step_overlaps_the_previous_publish_in_batch_order() -> None:
    log: list[str] = []
    gates = _gates(2)
    loop = _gated_loop(log, gates)
    batch = [[RawEvent(b"", None, "t", 0, o)] for o in (0, 1)]
    # (deadlines: a loop that waited for the publish before returning would hang here)
    await asyncio.wait_for(loop._store("0", batch[0], {}), 5)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert log == ["store 0", "publish 0 started"]
    second = asyncio.create_task(loop._store("1", batch[1], {}))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    # batch 1's Redis step ran while batch 0's outputs are in flight; nothing committable yet
    assert log == ["store 0", "publish 0 started", "store 1"] and not loop._uncommitted
    assert not second.done()  # its publish waits for batch 0's
    gates[0].set()
    await asyncio.wait_for(second, 5)
    await asyncio.sleep(0)
    assert log[3:] == ["publish 0 done", "publish 1 started"]
    assert loop._uncommitted == {TopicPartition("t", 0): 1}  # batch 0 only
    gates[1].set()
    await asyncio.wait_for(loop._publishing, 5)  # type: ignore[arg-type]
    assert loop._uncommitted == {TopicPartition("t", 0): 2}


async def test_a_failed_publish_fails_the_next_step_and_commits_nothing_after_it() -> None:
    log: list[str] = []
    loop = _gated_loop(log, _gates(1, opened=True, failing=(0,)))
    first, second = ([RawEvent(b"", None, "t", 0, o)] for o in (0, 1))
    await asyncio.wait_for(loop._store("0", first, {}), 5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="publish 0 failed"):
        await asyncio.wait_for(loop._store("1", second, {}), 5)  # type: ignore[arg-type]
    assert not loop._uncommitted


async def test_committable_offsets_never_move_backwards() -> None:
    """A partition revoked and assigned again is read again from its committed offset while a
    later batch of it may still be in flight: the lower offsets must not replace the higher."""
    log: list[str] = []
    loop = _gated_loop(log, _gates(2, opened=True))
    later = [RawEvent(b"", None, "t", 0, o) for o in (10, 11)]
    again = [RawEvent(b"", None, "t", 0, o) for o in (5, 6)]
    await asyncio.wait_for(loop._store("0", later, {}), 5)  # type: ignore[arg-type]
    await asyncio.wait_for(loop._store("1", again, {}), 5)  # type: ignore[arg-type]
    await asyncio.wait_for(loop._publishing, 5)  # type: ignore[arg-type]
    assert loop._uncommitted == {TopicPartition("t", 0): 12}


async def test_offsets_read_before_a_revoke_are_not_committable_after_it() -> None:
    """A partition revoked while a batch of it is in flight, then assigned again: the batch's
    offsets are dropped (its new owner reads on from the committed offset, which may be lower
    or, after another worker's commits, higher); batches read after the assignment count."""
    log: list[str] = []
    gates = _gates(2)
    loop = _gated_loop(log, gates)
    tp = TopicPartition("t", 0)
    in_flight = [RawEvent(b"", None, "t", 0, o) for o in (200, 201)]
    await asyncio.wait_for(loop._store("0", in_flight, {tp: 0}), 5)  # type: ignore[arg-type]
    await loop.on_partitions_revoked({tp})
    await loop.on_partitions_assigned({tp})
    gates[0].set()
    await asyncio.wait_for(loop._publishing, 5)  # type: ignore[arg-type]
    assert "publish 0 done" in log and not loop._uncommitted
    read_again = [RawEvent(b"", None, "t", 0, o) for o in (100, 101)]
    await asyncio.wait_for(loop._store("1", read_again, {tp: 1}), 5)  # type: ignore[arg-type]
    gates[1].set()
    await asyncio.wait_for(loop._publishing, 5)  # type: ignore[arg-type]
    assert loop._uncommitted == {tp: 102}


class FakeConsumer:
    """What `ScoringLoop.run` asks of aiokafka's consumer: batches of records from one
    partition, then nothing; commits recorded."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches
        self.commits: list[dict] = []
        self.stopped = asyncio.Event()
        self.drained = asyncio.Event()

    async def start(self) -> None: ...

    def subscribe(self, topics: list[str], listener: object) -> None: ...

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        if not self.batches:
            self.drained.set()
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        tp = TopicPartition("t", 0)
        return {tp: [FakeRecord(o) for o in self.batches.pop(0)]}

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", 0)}

    async def commit(self, offsets: dict) -> None:
        self.commits.append(dict(offsets))

    async def stop(self) -> None:
        self.stopped.set()


class FakeRecord:
    def __init__(self, offset: int) -> None:
        self.value, self.key, self.topic, self.partition = b"", None, "t", 0
        self.offset, self.timestamp = offset, None


class Prepared(str):
    failures = 0  # first purchases that could not be scored


class Preparing(StepRecorder):
    async def prepare(self, raws: list[RawEvent]) -> Prepared:
        return Prepared(raws[0].offset)


def _running_loop(log: list[str], gates: dict[int, Gate], batches: list[list[int]],
                  monkeypatch: pytest.MonkeyPatch) -> tuple[ScoringLoop, FakeConsumer]:
    loop = _gated_loop(log, gates)
    loop.processor = Preparing(log)  # type: ignore[assignment]
    consumer = FakeConsumer(batches)
    monkeypatch.setattr(loop, "make_consumer", lambda: consumer)
    return loop, consumer


async def test_a_failed_publish_stops_the_running_loop_and_commits_nothing_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    loop, consumer = _running_loop(log, _gates(3, opened=True, failing=(1,)),
                                   [[0, 1], [2, 3], [4, 5]], monkeypatch)
    with pytest.raises(RuntimeError, match="publish 1 failed"):
        await asyncio.wait_for(loop.run(), 5)
    assert consumer.stopped.is_set()
    committed = [c[TopicPartition("t", 0)] for c in consumer.commits]
    assert all(o <= 2 for o in committed)  # batch 0 at most: nothing from batch 1 on
    assert "publish 2 started" not in log


async def test_a_stopped_loop_commits_what_was_published(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    loop, consumer = _running_loop(log, _gates(2, opened=True), [[0, 1], [2, 3]], monkeypatch)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(consumer.drained.wait(), 5)

    async def last_publish_done() -> None:
        while "publish 1 done" not in log:
            await asyncio.sleep(0)

    await asyncio.wait_for(last_publish_done(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert consumer.stopped.is_set()
    assert consumer.commits[-1] == {TopicPartition("t", 0): 4}
    assert log.count("publish 1 done") == 1


async def test_the_running_loop_drops_a_batch_revoked_in_flight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` reads the revocation count with each batch: the batch whose publish was in flight
    when its partition was revoked (and assigned again) is not committed on stop."""
    log: list[str] = []
    gates = _gates(1)
    loop, consumer = _running_loop(log, gates, [[10, 11]], monkeypatch)
    task = asyncio.create_task(loop.run())

    async def logged(line: str) -> None:
        while line not in log:
            await asyncio.sleep(0)

    await asyncio.wait_for(logged("publish 0 started"), 5)
    tp = TopicPartition("t", 0)
    await loop.on_partitions_revoked({tp})
    await loop.on_partitions_assigned({tp})
    gates[0].set()
    await asyncio.wait_for(logged("publish 0 done"), 5)
    await asyncio.wait_for(consumer.drained.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert consumer.stopped.is_set()
    assert all(tp not in c for c in consumer.commits), consumer.commits
