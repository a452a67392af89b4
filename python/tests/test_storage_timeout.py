"""Storage deadlines from Python: s3_timeout / s3_first_byte_timeout reach the server, and an
endpoint that accepts connections and never answers is GPUFEED_STORAGE_TIMEOUT naming the object."""
from __future__ import annotations

import os
import socket
import threading

import pytest

import gpufeed
from conftest import open_loader


@pytest.fixture
def black_hole():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)  # keep it open, never answer
            except OSError:
                continue

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    th.join(timeout=2)
    for c in held:
        c.close()
    srv.close()


def test_black_hole_is_storage_timeout(black_hole):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="TEST", AWS_SECRET_ACCESS_KEY="TEST", AWS_REGION="us-east-1")
    with pytest.raises(gpufeed.GpufeedError) as e:
        list(open_loader("s3://bucket/ds", batch_size=8, s3_endpoint=black_hole, s3_first_byte_timeout=0.1, s3_timeout=30, env=env))
    assert e.value.code == "GPUFEED_STORAGE_TIMEOUT", e.value.message
    assert "s3://bucket/ds/index.json" in e.value.message
    assert "after 5 attempts" in e.value.message


@pytest.mark.parametrize("opts", [dict(s3_timeout="10"), dict(s3_timeout=0), dict(s3_first_byte_timeout=True), dict(s3_first_byte_timeout=float("nan"))])
def test_deadline_types_are_checked_here(opts):
    with pytest.raises(gpufeed.GpufeedError) as e:
        open_loader("s3://bucket/ds", batch_size=8, **opts)
    assert e.value.code == "GPUFEED_INVALID_OPTION"
    assert next(iter(opts)) in e.value.message
