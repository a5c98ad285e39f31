"""The scoring loop's batch order without services: the next batch's Redis step overlaps the
previous batch's publish; outputs and committable offsets stay in batch order."""

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


def _gated_loop(log: list[str], gates: dict[int, object]) -> ScoringLoop:
    """A loop whose publish of batch n waits for `gates[n]` (an asyncio.Event) and then
    raises if that event's `fail` attribute is set."""
    async def publish(outcome: Outcome) -> None:
        n = len([x for x in log if x.endswith("started")])
        log.append(f"publish {n} started")
        await gates[n].wait()
        if getattr(gates[n], "fail", False):
            raise RuntimeError(f"publish {n} failed")
        log.append(f"publish {n} done")

    return ScoringLoop(Settings.from_env(), StepRecorder(log), publish)  # type: ignore[arg-type]


async def test_the_next_redis_step_overlaps_the_previous_publish_in_batch_order() -> None:
    log: list[str] = []
    gates = {0: asyncio.Event(), 1: asyncio.Event()}
    loop = _gated_loop(log, gates)
    batch = [[RawEvent(b"", None, "t", 0, o)] for o in (0, 1)]
    # (deadlines: a loop that waited for the publish before returning would hang here)
    await asyncio.wait_for(loop._store("0", batch[0]), 5)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert log == ["store 0", "publish 0 started"]
    second = asyncio.create_task(loop._store("1", batch[1]))  # type: ignore[arg-type]
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
    gates = {0: asyncio.Event()}
    gates[0].fail = True  # type: ignore[attr-defined]
    gates[0].set()
    loop = _gated_loop(log, gates)
    first, second = ([RawEvent(b"", None, "t", 0, o)] for o in (0, 1))
    await asyncio.wait_for(loop._store("0", first), 5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="publish 0 failed"):
        await asyncio.wait_for(loop._store("1", second), 5)  # type: ignore[arg-type]
    assert not loop._uncommitted


async def test_committable_offsets_never_move_backwards() -> None:
    """A partition revoked and assigned again is read again from its committed offset while a
    later batch of it may still be in flight: the lower offsets must not replace the higher."""
    log: list[str] = []
    gates = {0: asyncio.Event(), 1: asyncio.Event()}
    gates[0].set()
    gates[1].set()
    loop = _gated_loop(log, gates)
    later = [RawEvent(b"", None, "t", 0, o) for o in (10, 11)]
    again = [RawEvent(b"", None, "t", 0, o) for o in (5, 6)]
    await asyncio.wait_for(loop._store("0", later), 5)  # type: ignore[arg-type]
    await asyncio.wait_for(loop._store("1", again), 5)  # type: ignore[arg-type]
    await asyncio.wait_for(loop._publishing, 5)  # type: ignore[arg-type]
    assert loop._uncommitted == {TopicPartition("t", 0): 12}
