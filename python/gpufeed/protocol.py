"""The bridge protocol, client side: newline-delimited JSON over one end of a socketpair.

The server (``gpufeed serve``, src/bridge/protocol.ts) sends ``hello`` first; then every ``next``
gets one ``batch``, ``end`` or ``error`` reply, every ``state`` one ``state`` reply, and ``release``
and ``close`` get none. Batch bytes never travel here: they stay in shared memory (see shm.py).
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable, Dict, Optional

from .errors import CLOSED, PROTOCOL, GpufeedError

PROTOCOL_VERSION = 1

# A batch message carries its ids; 64 MiB is far above any real batch and still a bound.
MAX_LINE_BYTES = 64 << 20
# How often a wait looks at whether the server process is still alive.
POLL_SECONDS = 0.2
SEND_TIMEOUT_SECONDS = 30.0

Message = Dict[str, Any]


class Channel:
    """Framed messages over a connected stream socket. Not thread-safe: the loader serializes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._eof = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, msg: Message) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        try:
            self._sock.settimeout(SEND_TIMEOUT_SECONDS)
            self._sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, OSError) as e:
            raise GpufeedError(CLOSED, f"the gpufeed server went away ({e.__class__.__name__}: {e})", {"reason": "eof"}) from None

    def recv(self, timeout: float, alive: Callable[[], None]) -> Message:
        """The next message. Waits at most ``timeout`` seconds, calling ``alive()`` (which raises when
        the server is gone) every POLL_SECONDS; raises GpufeedError CLOSED at EOF or timeout."""
        deadline = time.monotonic() + timeout
        # Bounded by the deadline: each turn either returns, reads, or waits up to POLL_SECONDS.
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if line.strip():
                    return parse_message(line)
                continue
            if len(self._buf) > MAX_LINE_BYTES:
                raise GpufeedError(PROTOCOL, f"bridge protocol: a message is longer than {MAX_LINE_BYTES} bytes")
            if self._eof:
                raise GpufeedError(CLOSED, "the gpufeed server closed the connection", {"reason": "eof"})
            left = deadline - time.monotonic()
            if left <= 0:
                raise GpufeedError(CLOSED, f"no reply from the gpufeed server within {timeout:g} s", {"reason": "timeout"})
            self._sock.settimeout(min(POLL_SECONDS, left))
            try:
                chunk = self._sock.recv(1 << 20)
            except socket.timeout:
                alive()
                continue
            except (ConnectionResetError, OSError) as e:
                raise GpufeedError(CLOSED, f"the gpufeed server went away ({e.__class__.__name__}: {e})", {"reason": "eof"}) from None
            if not chunk:
                self._eof = True
                continue
            self._buf += chunk

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def parse_message(line: bytes) -> Message:
    try:
        msg = json.loads(line)
    except ValueError as e:
        raise GpufeedError(PROTOCOL, f"bridge protocol: a message is not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise GpufeedError(PROTOCOL, "bridge protocol: a message must be a JSON object with a type")
    return msg


def expect(msg: Message, *types: str) -> Message:
    """Raises the server's error for an ``error`` message, a protocol error for any other surprise."""
    t = msg["type"]
    if t == "error":
        raise GpufeedError.from_message(msg)
    if t not in types:
        raise GpufeedError(PROTOCOL, f"bridge protocol: expected {' or '.join(types)}, got {t!r}")
    return msg


def check_hello(msg: Message) -> Message:
    expect(msg, "hello")
    version: Optional[int] = msg.get("protocol")
    if version != PROTOCOL_VERSION:
        raise GpufeedError(
            PROTOCOL,
            f"bridge protocol version {version!r} from the server, this client speaks {PROTOCOL_VERSION}: "
            "install matching versions of the gpufeed npm package and Python client",
        )
    for key in ("pid", "layout", "slabs", "columns", "state", "batchSize", "stepsPerEpoch"):
        if key not in msg:
            raise GpufeedError(PROTOCOL, f"bridge protocol: hello has no {key}")
    return msg
