"""A weighted mixture from Python: gpufeed.Loader([uri, ...], weights=[...]) delivers what
`gpufeed dump` prints for the same datasets and weights, with each row's stream and its source
values, and the configured share of each stream per epoch."""
from __future__ import annotations

import numpy as np

import gpufeed
from conftest import ROWS, batch_json, dump, make_row, open_loader


def test_mixture_matches_dump_with_streams(datasets):
    a, b = datasets["arrow"], datasets["parquet"]
    ref = [line for line in dump(a, b, "--weights", "0.7,0.3", "--batch-size", "16", "--shuffle", "window", "--shuffle-window", "40", "--seed", "4", "--workers", "2")]
    with open_loader([a, b], weights=[0.7, 0.3], batch_size=16, shuffle="window", shuffle_window=40, seed=4, epochs=1) as loader:
        schema = loader.schema
        got = []
        for bt in loader:
            assert bt.stream.dtype == np.int32 and bt.stream.shape == bt.ids.shape
            got.append((bt.ids.tolist(), bt.stream.tolist(), batch_json(bt, schema)))
    assert [g[0] for g in got] == [r["ids"] for r in ref]
    assert [g[1] for g in got] == [r["streams"] for r in ref]
    assert [g[2] for g in got] == [r["columns"] for r in ref]
    ids = [i for g in got for i in g[0]]
    streams = [s for g in got for s in g[1]]
    # 406 samples per epoch: 284 of stream 0 (its 203 rows and 81 again), 122 of stream 1.
    assert streams.count(0) == 284 and streams.count(1) == 122
    for i, s in zip(ids, streams):
        assert s == (0 if i < ROWS else 1)
    labels = [v for g in got for v in g[2]["label"]]
    assert labels == [make_row(i - s * ROWS)["label"] for i, s in zip(ids, streams)]


def test_mixture_options_checked():
    for kw, word in (({"weights": [1.0]}, "one value per dataset"), ({"weights": "0.5,0.5"}, "list of numbers"), ({"mixture_change": "later"}, "mixture_change")):
        try:
            gpufeed.Loader(["x", "y"], batch_size=4, **kw)
        except gpufeed.GpufeedError as e:
            assert e.code == "GPUFEED_INVALID_OPTION" and word in str(e)
        else:
            raise AssertionError(f"{kw} accepted")
