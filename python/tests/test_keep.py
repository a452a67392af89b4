"""Holding batches: kept batches stay intact, holding every slot stalls (with an error, never a
hang), and memory is the ring's, whatever the consumer does."""
from __future__ import annotations

import os

import pytest

import gpufeed
from conftest import SEQ, make_row, open_loader, slab_mappings


def check(b):
    assert b["tokens"].tolist() == [make_row(int(i))["tokens"] for i in b.ids]
    assert b["label"].tolist() == [make_row(int(i))["label"] for i in b.ids]


def test_kept_batches_stay_intact_and_a_full_ring_stalls(datasets):
    with open_loader(datasets["arrow"], batch_size=16, workers=1, slots=3, epochs=1) as loader:
        it = iter(loader)
        kept = [next(it).keep() for _ in range(3)]
        with pytest.raises(gpufeed.GpufeedError) as e:
            next(it)
        assert e.value.code == "GPUFEED_INVALID_OPTION" and e.value.details["option"] == "slots"
        kept[0].release()
        assert kept[0].released
        it = iter(loader)  # the failed generator is finished; the loader goes on where it was
        later = [next(it) for _ in range(4)]  # each recycles the one free slot
        assert [b.step for b in later] == [3, 4, 5, 6]
        for b in kept[1:]:
            check(b)  # not overwritten by the batches decoded since
        check(later[-1])
        for b in kept:
            b.release()
        b = next(it)
        b.keep().release()
        assert b.released
        steps = [b.step for b in loader]
        assert steps == list(range(8, loader.steps_per_epoch))


def test_memory_is_bounded_by_the_ring(datasets):
    def rss_kb(pid):
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

    with open_loader(datasets["arrow"], batch_size=32, workers=2, slots=4) as loader:
        slabs = set(loader._live().maps)
        it = iter(loader)
        held = []
        pid = loader.server_pid
        base = None

        def slab_fds():
            n = 0
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    n += "gpufeed-slab-" in os.readlink(f"/proc/{pid}/fd/{fd}")
                except FileNotFoundError:
                    pass  # a shard file closed meanwhile
            return n

        for n in range(600):
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)  # next epoch (endless stream)
                b = next(it)
            assert b.size > 0
            b.keep()
            held.append(b)
            if len(held) > 2:  # hold two batches at any time, release the oldest
                held.pop(0).release()
            if n == 100:
                base = (rss_kb(pid), rss_kb("self"))
        assert {int(b._session) for b in held} == {loader._live().id}
        assert slab_fds() == 4, "the server allocated no slab beyond its ring"
        assert slab_mappings() == len(slabs) == 4
        grow = (rss_kb(pid) - base[0], rss_kb("self") - base[1])
        # The ring is a few hundred KiB here; allow GC noise, catch per-batch growth.
        assert grow[0] < 32 * 1024 and grow[1] < 16 * 1024, f"RSS grew by {grow} KiB over 500 batches"
        for b in held:
            b.release()
