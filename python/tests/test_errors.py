"""Errors of the Node side reach Python as GpufeedError with the same codes."""
from __future__ import annotations

import os
import shutil
import sys

import pytest

import gpufeed
from conftest import ROWS, open_loader


def code_of(fn):
    with pytest.raises(gpufeed.GpufeedError) as e:
        fn()
    return e.value


def test_missing_dataset(tmp_path):
    err = code_of(lambda: list(open_loader(str(tmp_path / "nope"), batch_size=8)))
    assert err.code == "GPUFEED_MANIFEST_NOT_FOUND"
    assert "index.json" in err.message


@pytest.mark.parametrize(
    "opts, option",
    [
        (dict(batch_size=0), "--batch-size"),  # range checked by the server
        (dict(batch_size=8, shuffle="bogus"), "shuffle"),  # a flag commander refuses
        (dict(batch_size=8, workers=0), "--workers"),
        (dict(batch_size=8, cache_bytes="lots"), "--cache-bytes"),  # a storage option, parsed by the server
        (dict(batch_size=8, s3_endpoint="ftp://x"), "--s3-endpoint"),
        (dict(batch_size=8, memory_bytes="lots"), "--memory-bytes"),
        (dict(batch_size=8, slots=8, memory_bytes=4096), "memoryBytes"),  # slots x slot size must fit it
    ],
)
def test_bad_option(datasets, opts, option):
    err = code_of(lambda: list(open_loader(datasets["arrow"], **opts)))
    assert err.code == "GPUFEED_INVALID_OPTION"
    assert option in err.message


def test_option_types_are_checked_here(datasets):
    for opts in (dict(batch_size="8"), dict(batch_size=8, seed=1.5), dict(batch_size=8, cache_dir=3.5), dict(batch_size=8, columns="text"), dict(batch_size=8, timeout=0),
                 dict(batch_size=8, memory_bytes=1.5)):
        assert code_of(lambda: open_loader(datasets["arrow"], **opts)).code == "GPUFEED_INVALID_OPTION"


def test_unknown_column(datasets):
    err = code_of(lambda: list(open_loader(datasets["arrow"], batch_size=8, columns=["tokens", "nope"])))
    assert err.code == "GPUFEED_UNKNOWN_COLUMN"


def test_server_command_missing(datasets):
    err = code_of(lambda: list(open_loader(datasets["arrow"], batch_size=8, node_cmd=["/nonexistent/gpufeed"])))
    assert err.code == "GPUFEED_INVALID_OPTION" and "GPUFEED_NODE_CMD" in err.details.get("option", "")


def test_stderr_is_the_fallback(datasets):
    # A server that dies before it can speak on the socket: its error line on stderr is the error.
    fake = [sys.executable, "-c", "import sys; sys.stderr.write('gpufeed: error GPUFEED_STORAGE_AUTH: access denied\\n'); sys.exit(2)"]
    err = code_of(lambda: list(open_loader(datasets["arrow"], batch_size=8, node_cmd=fake)))
    assert (err.code, err.message) == ("GPUFEED_STORAGE_AUTH", "access denied")
    silent = [sys.executable, "-c", "import sys; sys.exit(3)"]
    err = code_of(lambda: list(open_loader(datasets["arrow"], batch_size=8, node_cmd=silent)))
    assert err.code == "GPUFEED_CLOSED" and "status 3" in err.message


def test_storage_error_mid_stream_and_recovery(datasets, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(datasets["arrow"], ds)
    shards = sorted(p for p in ds.rglob("*.arrow"))
    victim = shards[len(shards) // 2]
    moved = tmp_path / "moved"
    full = [tuple(b.ids.tolist()) for b in open_loader(str(ds), batch_size=16, epochs=1, workers=1, slots=2)]
    os.rename(victim, moved)
    loader = open_loader(str(ds), batch_size=16, epochs=1, workers=1, slots=2)
    got = []
    with pytest.raises(gpufeed.GpufeedError) as e:
        for b in loader:
            got.append(tuple(b.ids.tolist()))
    assert e.value.code == "GPUFEED_SHARD_MISSING"
    assert 0 < len(got) < len(full)
    # The failure sticks; the state says where the stream stood, and continues once the shard is back.
    assert code_of(lambda: list(loader)).code == "GPUFEED_SHARD_MISSING"
    state = loader.state_dict()
    assert state["stepsDone"] == len(got)
    os.rename(moved, victim)
    loader.load_state_dict(state)
    rest = [tuple(b.ids.tolist()) for b in loader]
    loader.close()
    assert got + rest == full
    assert sum(len(x) for x in full) == ROWS


def test_memory_bytes_within_reach_loads_everything(datasets):
    # The same flag path as the failures above, with a budget the slots fit.
    loader = open_loader(datasets["arrow"], batch_size=8, memory_bytes="64MiB", epochs=1)
    try:
        assert sum(len(b["label"]) for b in loader) == ROWS
    finally:
        loader.close()
