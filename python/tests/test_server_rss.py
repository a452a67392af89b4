"""Flat memory of the Python client's server over many epochs: the server process's RSS, read from
/proc/PID/status after each epoch, must not keep growing with epochs (the JS side is
test/integration/loader-rss.test.ts; benchmarks/server-rss-epochs.py runs 100 epochs for
`npm run bench`). Memory is asserted, never time.

The baseline is taken after a warm-up, as in the JS test: on this small dataset (63 batches an
epoch) the first epochs are the first few thousand batches, while V8 sizes the server's heaps (the
young generations of the main and decode threads grow and their pages become resident one
scavenge at a time, and garbage that reached the old generations waits for a full collection).
That growth levels off by epoch 20-40 (README, "Performance"); a leak of even 0.5 MiB per epoch
would add over 15% here."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import open_loader, run_cli

EPOCHS = 60
WARM_UP = 20
ROWS = 2000


def server_rss(pid: int) -> Dict[str, int]:
    out: Dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


@pytest.fixture(scope="module")
def rss_dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("gpufeed-rss")
    src = root / "rows.jsonl"
    with src.open("w") as f:
        for i in range(ROWS):
            f.write(json.dumps({"tokens": [i + k for k in range(64)], "text": f"t{i}" * (i % 13)}) + "\n")
    out = root / "ds"
    run_cli("prep", str(src), "--out", str(out), "--format", "arrow", "--shape", "tokens=64", "--shard-size", "48KiB", "--workers", "0")
    return str(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_server_rss_stays_flat_over_epochs(rss_dataset: str) -> None:
    loader = open_loader(rss_dataset, batch_size=32, workers=2, epochs=EPOCHS, shuffle="window", shuffle_window=256, seed=1, timeout=60.0)
    epochs: List[Dict[str, int]] = []
    try:
        for epoch in range(EPOCHS):
            rows = sum(b.size for b in loader)
            assert rows == ROWS, f"epoch {epoch} delivered every row"
            pid = loader.server_pid
            assert pid is not None
            epochs.append({"epoch": epoch, **server_rss(pid)})
    finally:
        loader.close()
    base = max(e["VmRSS"] for e in epochs[WARM_UP - 2 : WARM_UP + 1])
    worst = max(epochs[WARM_UP + 1 :], key=lambda e: e["VmRSS"])
    mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
    assert worst["VmRSS"] <= base * 1.1, (
        f"server RSS {mib(worst['VmRSS'])} at epoch {worst['epoch']} is more than 10% over {mib(base)} at epochs {WARM_UP - 2}-{WARM_UP} "
        f"(anon {mib(worst['RssAnon'])}, file {mib(worst['RssFile'])}, shmem {mib(worst['RssShmem'])})"
    )
