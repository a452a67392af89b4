"""Packing from Python: the same packed batches as `gpufeed dump --pack`, and each row's tokens are
the documents' own (the `tags` list column of the shared fixture, documents of 0 to 3 tokens)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROWS, batch_json, dump, make_row, open_loader

from gpufeed import GpufeedError


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_packed_batches_as_dump(datasets, fmt):
    ds = datasets[fmt]
    ref = dump(ds, "--batch-size", "3", "--pack", "tags=5", "--workers", "1", "--world-size", "2", "--rank", "1", "--shuffle", "window", "--shuffle-window", "20")
    with open_loader(ds, batch_size=3, pack=("tags", 5), epochs=1, workers=1, world_size=2, rank=1, shuffle="window", shuffle_window=20) as loader:
        names = [c["name"] for c in loader.schema]
        assert names == ["tags", "position_ids", "seq_lens"]
        got = [(b.step, batch_json(b, loader.schema), np.asarray(b["tags"]).shape) for b in loader]
    assert len(got) == len(ref) > 3
    for (step, cols, shape), r in zip(got, ref):
        assert step == r["step"] and cols == r["columns"] and shape == (3, 5)
    # Every row's tokens are the tokens its segments name.
    tags = {i: make_row(i)["tags"] for i in range(ROWS)}
    for r in ref:
        flat = r["columns"]["tags"]
        for row, segs in enumerate(r["pack"]["segments"]):
            want = []
            for k in range(0, len(segs), 3):
                doc, off, n = segs[k : k + 3]
                want += tags[doc][off : off + n] if doc >= 0 else [0] * n
            assert flat[row * 5 : (row + 1) * 5] == want


def test_pack_option_checked():
    with pytest.raises(GpufeedError) as e:
        open_loader("/nonexistent", batch_size=2, pack=("tags",))
    assert e.value.code == "GPUFEED_INVALID_OPTION"
