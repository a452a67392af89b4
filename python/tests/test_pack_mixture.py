"""Packing over a weighted mixture from Python: gpufeed.Loader([uri, uri], weights=[...],
pack=...) delivers what `gpufeed dump` prints for the same datasets, weights and packing, with
each row's stream, and each row's tokens are its segments' documents' own (the `tags` list column
of the shared fixture; the same dataset twice as two streams, stream 1's ids following stream 0's)."""
from __future__ import annotations

import numpy as np

from conftest import ROWS, batch_json, dump, make_row, open_loader


def test_packed_mixture_as_dump(datasets):
    ds = datasets["arrow"]
    flags = ("--weights", "0.7,0.3", "--batch-size", "3", "--pack", "tags=5", "--workers", "1", "--world-size", "2", "--rank", "1", "--shuffle", "window", "--shuffle-window", "20", "--epochs", "1")
    ref = [line for line in dump(ds, ds, *flags)]
    with open_loader([ds, ds], weights=[0.7, 0.3], batch_size=3, pack=("tags", 5), epochs=1, workers=1, world_size=2, rank=1, shuffle="window", shuffle_window=20) as loader:
        assert [c["name"] for c in loader.schema] == ["tags", "position_ids", "seq_lens"]
        got = [(b.step, b.ids.tolist(), b.stream.tolist(), batch_json(b, loader.schema), np.asarray(b["tags"]).shape) for b in loader]
    assert len(got) == len(ref) > 3
    for (step, ids, streams, cols, shape), r in zip(got, ref):
        assert step == r["step"] and ids == r["ids"] and streams == r["streams"] and cols == r["columns"] and shape == (3, 5)
    both = [0, 0]
    for r in ref:
        flat = r["columns"]["tags"]
        for row, (segs, streams) in enumerate(zip(r["pack"]["segments"], r["pack"]["streams"])):
            want = []
            for k in range(0, len(segs), 3):
                doc, off, n = segs[k : k + 3]
                # Global ids: stream 1's documents follow stream 0's ROWS.
                assert streams[k // 3] == (-1 if doc < 0 else doc // ROWS)
                want += make_row(doc % ROWS)["tags"][off : off + n] if doc >= 0 else [0] * n
                if doc >= 0:
                    both[doc // ROWS] += 1
            assert flat[row * 5 : (row + 1) * 5] == want
    assert both[0] > both[1] > 0, f"segments per stream: {both}"
