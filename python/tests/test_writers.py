"""Files as pyarrow writes them reach PyTorch-side numpy arrays with the writer's values: float16
as numpy.float16, timestamps as their int64, decimals as float64, HF image structs flattened, and
pyarrow's default (LZ4-compressed) Feather read in place through `gpufeed index`."""
from __future__ import annotations

import decimal
import os

import numpy as np
import pytest

from conftest import open_loader, run_cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")

N = 29


def _table():
    return pa.table({
        "half": pa.array(np.array([i * 0.37 - 3 for i in range(N)], dtype=np.float16), pa.float16()),
        "ts": pa.array([i * 1_000_003 for i in range(N)], pa.timestamp("us", tz="UTC")),
        "price": pa.array([decimal.Decimal(i) * decimal.Decimal("0.5") for i in range(N)], pa.decimal128(20, 1)),
        "image": pa.array([None if i == 4 else {"bytes": bytes([i, 255 - i]), "path": f"img{i}.png"} for i in range(N)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    })


def _rows(ds):
    out = {"half": [], "ts": [], "price": [], "image.path": [], "image.bytes": [], "valid": []}
    with open_loader(ds, batch_size=8, epochs=1, workers=1) as loader:
        schema = {c["name"]: c for c in loader.schema}
        for b in loader:
            assert b["half"].dtype == np.float16
            out["half"] += b["half"].tolist()
            out["ts"] += b["ts"].tolist()
            out["price"] += b["price"].tolist()
            out["image.path"] += b.strings("image.path")
            col = b["image.bytes"]
            out["image.bytes"] += [bytes(col.values[col.offsets[i]:col.offsets[i + 1]]) for i in range(len(b.ids))]
            out["valid"] += b.valid["image.path"].tolist()
    return out, schema


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_prep_of_pyarrow_parquet(tmp_path, fmt):
    src = tmp_path / "hf.parquet"
    t = _table()
    pq.write_table(t, src)
    ds = tmp_path / "ds"
    run_cli("prep", str(src), "--out", str(ds), "--format", fmt, "--workers", "0")
    got, schema = _rows(str(ds))
    assert got["half"] == np.array([i * 0.37 - 3 for i in range(N)], dtype=np.float16).tolist()
    assert schema["half"]["dtype"] == "float16"
    assert got["ts"] == [i * 1_000_003 for i in range(N)]
    assert schema["ts"].get("logical") == "timestamp" and schema["ts"].get("unit") == "us" and schema["ts"].get("timezone") == "UTC"
    assert got["price"] == [float(decimal.Decimal(i) * decimal.Decimal("0.5")) for i in range(N)]
    assert got["valid"] == [0 if i == 4 else 1 for i in range(N)], "a null struct makes its leaves null"
    assert [p for i, p in enumerate(got["image.path"]) if i != 4] == [f"img{i}.png" for i in range(N) if i != 4]
    assert [v for i, v in enumerate(got["image.bytes"]) if i != 4] == [bytes([i, 255 - i]) for i in range(N) if i != 4]


def test_index_of_default_feather_in_place(tmp_path):
    d = tmp_path / "feather"
    os.makedirs(d)
    t = pa.table({"half": _table().column("half"), "ts": _table().column("ts"), "ids": pa.array([list(range(i % 4)) for i in range(N)], pa.list_(pa.int32()))})
    feather.write_feather(t, d / "a.feather")  # LZ4 frame, pyarrow's default
    run_cli("index", str(d))
    with open_loader(str(d), batch_size=10, epochs=1, workers=1) as loader:
        half, ts, ids = [], [], []
        for b in loader:
            half += b["half"].tolist()
            ts += b["ts"].tolist()
            col = b["ids"]
            ids += [col.values[col.offsets[i]:col.offsets[i + 1]].tolist() for i in range(len(b.ids))]
    assert half == np.array([i * 0.37 - 3 for i in range(N)], dtype=np.float16).tolist()
    assert ts == [i * 1_000_003 for i in range(N)]
    assert ids == [list(range(i % 4)) for i in range(N)]


def _in_place_table():
    return pa.table({
        "price": pa.array([None if i == 2 else decimal.Decimal(i * 1234567) / 100 for i in range(N)], pa.decimal128(12, 2)),
        "huge": pa.array([decimal.Decimal((-1) ** i * (i * 98765432109876543210987 + 7)).scaleb(-5) for i in range(N)], pa.decimal256(40, 5)),
        "hash": pa.array([bytes((i * 7 + k) % 256 for k in range(4)) for i in range(N)], pa.binary(4)),
    })


@pytest.mark.parametrize("kind", ["parquet", "parquet-int", "arrow", "feather", "views", "dict"])
def test_index_reads_decimals_fixed_binary_and_views_in_place(tmp_path, kind):
    """`gpufeed index` (no conversion): decimals as float(Decimal), FixedSizeBinary / FLBA as bytes, views as strings."""
    d = tmp_path / "ds"
    os.makedirs(d)
    t = _in_place_table()
    if kind == "parquet":
        pq.write_table(t, d / "a.parquet")
    elif kind == "parquet-int":
        pq.write_table(t.select(["price"]), d / "a.parquet", store_decimal_as_integer=True)
        t = t.select(["price"])
    elif kind == "dict":
        # pandas categoricals: dictionary-encoded strings, Feather's default LZ4.
        t = pa.table({"sv": pa.array([None if i == 4 else ["red", "green", "a longer category"][i % 3] for i in range(N)]).dictionary_encode()})
        feather.write_feather(t, d / "a.arrow", chunksize=8)
    elif kind == "views":
        t = pa.table({"sv": pa.array([None if i == 4 else "long value " * (i % 3) + str(i) for i in range(N)], pa.string_view())})
        feather.write_feather(t, d / "a.arrow", compression="uncompressed", chunksize=8)
    else:
        feather.write_feather(t, d / "a.arrow", **({} if kind == "feather" else {"compression": "uncompressed"}))
    run_cli("index", str(d))
    got = {name: [] for name in t.column_names}
    valid = {name: [] for name in t.column_names}
    with open_loader(str(d), batch_size=8, epochs=1, workers=1) as loader:
        schema = {c["name"]: c for c in loader.schema}
        for b in loader:
            for name in t.column_names:
                v = b.valid[name].tolist() if name in b.valid else [1] * len(b.ids)
                valid[name] += v
                if name == "sv":
                    got[name] += b.strings(name)
                elif name == "hash":
                    col = b[name]
                    got[name] += [bytes(col.values[col.offsets[i]:col.offsets[i + 1]]) for i in range(len(b.ids))]
                else:
                    assert b[name].dtype == np.float64
                    got[name] += b[name].tolist()
    for name in t.column_names:
        want = t.column(name).to_pylist()
        if kind == "dict":
            assert schema[name]["dtype"] == "string"
        if name in ("price", "huge"):
            assert schema[name]["dtype"] == "float64" and schema[name].get("logical") == "decimal"
            want = [None if v is None else float(v) for v in want]
        assert valid[name] == [0 if v is None else 1 for v in want], name
        assert [g for g, w in zip(got[name], want) if w is not None] == [w for w in want if w is not None], name
