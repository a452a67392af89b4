"""Fixtures: the built Node CLI (skip cleanly without it), small datasets made with `gpufeed prep`,
and `gpufeed dump` as the reference the Python client must agree with."""
from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import gpufeed  # noqa: E402
from gpufeed import PaddedColumn, VarColumn  # noqa: E402

CLI = ROOT / "bin" / "gpufeed.js"
BUILT = [ROOT / "dist" / "src" / "cli" / "serve.js", ROOT / "dist" / "workers" / "decode.js", ROOT / "native" / "build" / "Release" / "gpufeed_native.node"]
ROWS = 203
SEQ = 16


def _missing() -> List[str]:
    return [str(p.relative_to(ROOT)) for p in BUILT if not p.exists()]


def node_cmd() -> List[str]:
    return shlex.split(os.environ.get("GPUFEED_NODE_CMD") or f"node {CLI}")


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    missing = _missing()
    if missing:
        skip = pytest.mark.skip(reason=f"the Node build is missing ({', '.join(missing)}): run `npm install` (or `npm run build`) first")
        for item in items:
            item.add_marker(skip)


os.environ.setdefault("GPUFEED_NODE_CMD", f"node {CLI}")


def make_row(i: int) -> Dict[str, Any]:
    return {
        "tokens": [(i * 131 + k * 7) % 50000 for k in range(SEQ)],
        "label": i * 3 - 100,
        "score": i / 4,
        "text": "" if i % 5 == 0 else f"row-{i}-" + "é" * (i % 7),
        "tags": [i + k for k in range(i % 4)],
        "maybe": None if i % 3 == 0 else i,
        "flag": i % 2 == 0,
    }


def run_cli(*args: str, timeout: float = 60) -> str:
    p = subprocess.run(node_cmd() + list(args), capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"gpufeed {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.stdout


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    root = tmp_path_factory.mktemp("gpufeed-ds")
    src = root / "rows.jsonl"
    with src.open("w") as f:
        for i in range(ROWS):
            f.write(json.dumps(make_row(i)) + "\n")
    out: Dict[str, str] = {}
    for fmt in ("arrow", "parquet"):
        d = root / fmt
        run_cli("prep", str(src), "--out", str(d), "--format", fmt, "--shard-size", "2KiB", "--shape", f"tokens={SEQ}",
                "--type", "label=int64", "--nullable", "maybe", "--workers", "0")
        out[fmt] = str(d)
    return out


def dump(dataset: str, *flags: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in run_cli("dump", dataset, *flags).splitlines() if line.strip()]


def batch_json(batch: "gpufeed.Batch", schema: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
    """A numpy batch rendered the way `gpufeed dump` renders one (src/pipeline/batch-json.ts)."""
    out: Dict[str, List[Any]] = {}
    kinds = {c["name"]: c for c in schema}
    for name in batch.keys():
        spec = kinds[name]
        col = batch[name]
        if isinstance(col, PaddedColumn):
            lens = np.asarray(col.lengths)
            offs = np.concatenate([[0], np.cumsum(lens)])
            col = VarColumn(offs, np.concatenate([np.asarray(col.values)[i, : lens[i]] for i in range(len(lens))]) if len(lens) else np.zeros(0))
        if isinstance(col, VarColumn):
            offs = np.asarray(col.offsets)
            vals = np.asarray(col.values)
            values: List[Any] = []
            for i in range(batch.size):
                part = vals[int(offs[i]) : int(offs[i + 1])]
                if spec["dtype"] == "string":
                    values.append(bytes(part.astype(np.uint8)).decode("utf-8"))
                elif spec["dtype"] == "binary":
                    values.append(base64.b64encode(bytes(part.astype(np.uint8))).decode())
                else:
                    values.append(part.tolist())
        else:
            values = np.asarray(col).reshape(-1).tolist()
        valid = batch.valid.get(name)
        if valid is not None and spec["kind"] != "fixed":
            values = [v if ok else None for v, ok in zip(values, np.asarray(valid).tolist())]
        out[name] = values
    return out


def open_loader(dataset: str, **kw: Any) -> "gpufeed.Loader":
    kw.setdefault("workers", 2)
    kw.setdefault("as_numpy", True)
    # Hang guards, not speed checks: generous enough for a machine loaded many times over.
    kw.setdefault("timeout", 120.0)
    kw.setdefault("start_timeout", 120.0)
    return gpufeed.Loader(dataset, **kw)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def slab_mappings(pid: str = "self") -> int:
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for line in f if "gpufeed-slab-" in line)
