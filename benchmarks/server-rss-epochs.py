"""Flat memory of the Python client's server: runs many short epochs through gpufeed.Loader (which
starts `gpufeed serve`) and prints one JSON line per epoch with the server process's RSS, read from
/proc/PID/status (VmRSS, RssAnon, RssFile, RssShmem, in bytes), like benchmarks/rss-epochs-child.ts
does for the JS Loader. Linux only. Args: dataset epochs [batch_size] [workers]. The server command
is $GPUFEED_NODE_CMD, else `node bin/gpufeed.js` of this checkout."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import gpufeed  # noqa: E402

FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def server_rss(pid: int) -> Dict[str, int]:
    out: Dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in FIELDS:
                out[key] = int(value.split()[0]) * 1024
    return out


def main() -> None:
    dataset, epochs = sys.argv[1], int(sys.argv[2])
    batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    node_cmd = shlex.split(os.environ.get("GPUFEED_NODE_CMD") or f"node {ROOT / 'bin' / 'gpufeed.js'}")
    loader = gpufeed.Loader(dataset, batch_size=batch_size, workers=workers, epochs=epochs, shuffle="window", shuffle_window=256, seed=1,
                            as_numpy=True, node_cmd=node_cmd, timeout=60.0, start_timeout=60.0)
    try:
        for epoch in range(epochs):
            rows = sum(b.size for b in loader)
            pid = loader.server_pid
            assert pid is not None, "the server is running"
            rss = server_rss(pid)
            print(json.dumps({"epoch": epoch, "rows": rows, "rss": rss["VmRSS"], **rss}), flush=True)
    finally:
        loader.close()


if __name__ == "__main__":
    main()
