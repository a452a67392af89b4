"""A shard truncated while the server reads it through its file map: the Python client gets
GPUFEED_SHARD_CORRUPT naming the shard (the server is not killed by SIGBUS)."""
from __future__ import annotations

import json
import os

import pytest

import gpufeed
from conftest import open_loader, run_cli


def test_truncated_shard_is_shard_corrupt(tmp_path):
    src = tmp_path / "rows.jsonl"
    with src.open("w") as f:
        for i in range(3000):
            f.write(json.dumps({"tokens": [(i * 31 + k) % 50000 for k in range(256)], "label": i}) + "\n")
    d = tmp_path / "ds"
    run_cli("prep", str(src), "--out", str(d), "--format", "arrow", "--shard-size", "64MiB", "--shape", "tokens=256",
            "--type", "label=int64", "--workers", "0")
    manifest = json.loads((d / "index.json").read_text())
    assert len(manifest["shards"]) == 1
    shard = manifest["shards"][0]["path"]
    env = dict(os.environ, GPUFEED_READ="mmap")
    loader = open_loader(str(d), batch_size=8, workers=1, slots=2, shuffle="none", pin=False, env=env)
    seen = 0
    with loader, pytest.raises(gpufeed.GpufeedError) as e:
        for _ in loader:
            seen += 1
            if seen == 1:
                os.truncate(d / shard, 500_000)
            assert seen < 3000 // 8 + 1
    assert e.value.code == "GPUFEED_SHARD_CORRUPT", e.value.message
    assert e.value.message.startswith(f"shard {shard}: "), e.value.message
    assert 1 <= seen < 3000 // 8
