"""The Python client delivers what `gpufeed dump` prints with the same options: same batches, same
order, same values, for both shard formats."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROWS, SEQ, batch_json, dump, make_row, open_loader


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_same_batches_as_dump(datasets, fmt):
    ds = datasets[fmt]
    ref = dump(ds, "--batch-size", "24", "--shuffle", "window", "--shuffle-window", "50", "--seed", "7", "--epochs", "2", "--workers", "2")
    with open_loader(ds, batch_size=24, shuffle="window", shuffle_window=50, seed=7, epochs=2) as loader:
        schema = loader.schema
        got = []
        for _ in range(2):
            for b in loader:
                got.append({"epoch": b.epoch, "step": b.step, "ids": b.ids.tolist(), "columns": batch_json(b, schema)})
        assert list(loader) == [], "a third epoch of a 2-epoch stream is empty"
    assert len(got) == len(ref) > 2
    for g, r in zip(got, ref):
        assert (g["epoch"], g["step"], g["ids"]) == (r["epoch"], r["step"], r["ids"])
        assert g["columns"] == r["columns"], f"values differ in epoch {g['epoch']} step {g['step']}"
    # Every sample once per epoch, and shuffled (not manifest order).
    for e in range(2):
        ids = [i for g in got if g["epoch"] == e for i in g["ids"]]
        assert sorted(ids) == list(range(ROWS)) and ids != list(range(ROWS))


def test_column_subset_and_naive_shuffle(datasets):
    ds = datasets["arrow"]
    ref = dump(ds, "--batch-size", "50", "--shuffle", "naive", "--seed", "3", "--columns", "text,maybe", "--pad", "--workers", "1")
    with open_loader(ds, batch_size=50, shuffle="naive", seed=3, columns=["text", "maybe"], pad_last=True, epochs=1, workers=1) as loader:
        got = [(b.ids.tolist(), batch_json(b, loader.schema)) for b in loader]
    assert [g[0] for g in got] == [r["ids"] for r in ref]
    assert [g[1] for g in got] == [r["columns"] for r in ref]
    assert all(len(g[0]) == 50 for g in got), "pad_last fills the last batch"


def test_arrays_are_typed_views(datasets):
    with open_loader(datasets["arrow"], batch_size=32, epochs=1) as loader:
        b = next(iter(loader))
        rows = [make_row(int(i)) for i in b.ids]
        assert b["tokens"].shape == (32, SEQ) and b["tokens"].dtype == np.int32
        assert b["label"].dtype == np.int64 and b["score"].dtype == np.float64 and b["flag"].dtype == np.bool_
        assert b["tokens"].tolist() == [r["tokens"] for r in rows]
        assert b["flag"].tolist() == [r["flag"] for r in rows]
        assert b.strings("text") == [r["text"] for r in rows]
        assert b["maybe"].base is not None, "a view over the shared mapping, not a copy"
        tags = b["tags"]
        assert [tags.values[tags.offsets[i] : tags.offsets[i + 1]].tolist() for i in range(32)] == [r["tags"] for r in rows]


def test_pad_option(datasets):
    with open_loader(datasets["arrow"], batch_size=40, pad=True, pad_value=-1, columns=["tags", "text"], epochs=1) as loader:
        for b in loader:
            rows = [make_row(int(i)) for i in b.ids]
            tags = b["tags"]
            assert tags.values.shape == (b.size, max(len(r["tags"]) for r in rows))
            for i, r in enumerate(rows):
                n = len(r["tags"])
                assert int(tags.lengths[i]) == n
                assert tags.values[i, :n].tolist() == r["tags"] and (tags.values[i, n:] == -1).all()
            assert b.strings("text") == [r["text"] for r in rows]


def test_epochs_and_partial_iteration(datasets):
    with open_loader(datasets["arrow"], batch_size=64, epochs=3) as loader:
        steps = loader.steps_per_epoch
        assert steps == 4
        first = []
        for b in loader:
            first.append((b.epoch, b.step))
            if len(first) == 2:
                break  # leaving an epoch early: the next `for` goes on where it stopped
        rest = [(b.epoch, b.step) for b in loader]
        assert first + rest == [(0, s) for s in range(steps)]
        assert [(b.epoch, b.step) for b in loader] == [(1, s) for s in range(steps)]
        assert loader.epoch == 1
        assert [(b.epoch, b.step) for b in loader] == [(2, s) for s in range(steps)]
        assert list(loader) == []


def test_released_batch_refuses_access(datasets):
    import gpufeed

    with open_loader(datasets["arrow"], batch_size=16, epochs=1) as loader:
        it = iter(loader)
        b0 = next(it)
        next(it)
        assert b0.released
        with pytest.raises(gpufeed.GpufeedError) as e:
            b0["tokens"]
        assert e.value.code == "GPUFEED_CLOSED"
