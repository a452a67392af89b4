"""Piece checksums through the Python client: a damaged piece is GPUFEED_HASH_MISMATCH naming the
shard; verify_pieces=False passes --no-verify-pieces to the server."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import gpufeed
from conftest import ROWS, open_loader


def _damaged_copy(src: str, dst: Path) -> str:
    """Flips bytes in the middle of the first record batch's body of the first shard."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "index.json").read_text())
    shard = manifest["shards"][0]
    batch = shard["layout"]["batches"][0]
    path = dst / shard["path"]
    data = bytearray(path.read_bytes())
    at = batch["offset"] + batch["metadataLength"] + batch["bodyLength"] // 2
    for i in range(at, at + 4):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return shard["path"]


def test_damaged_piece_is_a_hash_mismatch(datasets, tmp_path):
    shard = _damaged_copy(datasets["arrow"], tmp_path / "bad")
    with pytest.raises(gpufeed.GpufeedError) as e:
        list(open_loader(str(tmp_path / "bad"), batch_size=8, epochs=1))
    assert e.value.code == "GPUFEED_HASH_MISMATCH"
    assert shard in e.value.message and "record batch 0" in e.value.message


def test_verify_pieces_false_skips_the_checksums(datasets, tmp_path):
    _damaged_copy(datasets["arrow"], tmp_path / "bad")
    # The flipped bytes are column values: without the check the rows come through (changed).
    rows = sum(len(b["label"]) for b in open_loader(str(tmp_path / "bad"), batch_size=8, epochs=1, verify_pieces=False))
    assert rows == ROWS


def test_verify_pieces_type_is_checked_here(datasets):
    with pytest.raises(gpufeed.GpufeedError) as e:
        open_loader(datasets["arrow"], batch_size=8, verify_pieces="no")
    assert e.value.code == "GPUFEED_INVALID_OPTION" and "verify_pieces" in e.value.message
