"""The worker process's set-up (`stream.worker`) that is not the app itself."""

from __future__ import annotations

import gc

from stream.worker import GC_FIRST_GENERATION, freeze_startup_objects


def test_start_up_objects_are_frozen_and_batches_rarely_collected() -> None:
    before = gc.get_threshold()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0  # the start-up heap is never scanned again
        # a 5,000-invoice batch's garbage is freed by reference counting, not collected
        assert gc.get_threshold()[0] == GC_FIRST_GENERATION >= 100_000
        survivors = [[i] for i in range(GC_FIRST_GENERATION // 2)]
        assert gc.get_count()[0] >= len(survivors)  # no collection ran in the meantime
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
