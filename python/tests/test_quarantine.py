"""on_corrupt="skip" through the bridge: a truncated shard's rows arrive as ``batch.quarantined``
rows (copies of other rows of their batch, by the documented rule), every other sample once with
its values, the event in the JSON Lines log, and a resume state that lists the shard; without it
the run fails naming the shard."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import gpufeed
from conftest import open_loader, run_cli


def _dataset(tmp_path):
    src = tmp_path / "rows.jsonl"
    with src.open("w") as f:
        for i in range(600):
            f.write(json.dumps({"tokens": [(i * 31 + k) % 50000 for k in range(16)], "label": i}) + "\n")
    d = tmp_path / "ds"
    run_cli("prep", str(src), "--out", str(d), "--format", "arrow", "--shard-size", "4KiB", "--shape", "tokens=16",
            "--type", "label=int64", "--workers", "0")
    manifest = json.loads((d / "index.json").read_text())
    assert len(manifest["shards"]) >= 3
    return d, manifest


def test_quarantined_rows_over_the_bridge(tmp_path):
    d, manifest = _dataset(tmp_path)
    shard = manifest["shards"][1]
    first = manifest["shards"][0]["rows"]
    bad = set(range(first, first + shard["rows"]))
    os.truncate(d / shard["path"], 64)

    with open_loader(str(d), batch_size=16, shuffle="none", pin=False) as loader, pytest.raises(gpufeed.GpufeedError) as e:
        for _ in loader:
            pass
    assert e.value.code == "GPUFEED_SHARD_CORRUPT", e.value.message
    assert e.value.details.get("shard") == shard["path"]

    log = tmp_path / "q.jsonl"
    seen = []
    replaced = 0
    state = None
    with open_loader(str(d), batch_size=16, shuffle="window", seed=3, pin=False, epochs=1, on_corrupt="skip", quarantine_log=str(log)) as loader:
        for batch in loader:
            ids = batch.ids.tolist()
            labels = np.asarray(batch["label"]).tolist()
            q = set(batch.quarantined)
            assert batch.quarantined == sorted(q)
            assert q == {i for i, sid in enumerate(ids) if sid in bad}, (ids, batch.quarantined)
            good = [labels[i] for i in range(len(ids)) if i not in q]
            for k, row in enumerate(sorted(q)):
                # The rule: the k-th replaced row holds the (k mod g)-th good row; none good: zeros.
                assert labels[row] == (good[k % len(good)] if good else 0)
            for i, sid in enumerate(ids):
                if i not in q:
                    assert labels[i] == sid
                    seen.append(sid)
            replaced += len(q)
            if q and state is None:
                state = loader.state_dict()
    assert sorted(seen) == [i for i in range(600) if i not in bad]
    assert replaced == len(bad)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["shard"], x["code"], x["rows"]) for x in lines] == [(shard["path"], "GPUFEED_SHARD_CORRUPT", [0, shard["rows"]])]
    assert state is not None and state["version"] == 3
    assert state["quarantined"] == [{"shard": 1, "path": shard["path"], "code": "GPUFEED_SHARD_CORRUPT"}]


def test_on_corrupt_is_checked():
    with pytest.raises(gpufeed.GpufeedError) as e:
        gpufeed.Loader("/nonexistent", batch_size=4, on_corrupt="ignore")
    assert e.value.code == "GPUFEED_INVALID_OPTION" and e.value.details["option"] == "on_corrupt"
