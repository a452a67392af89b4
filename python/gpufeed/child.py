"""The ``gpufeed serve`` child process and its control socket.

The command is ``$GPUFEED_NODE_CMD`` (split like a shell would, e.g. ``node /path/bin/gpufeed.js``)
or ``gpufeed`` on PATH. The control channel is one end of a ``socketpair``: the child inherits it as
a descriptor (``--fd N``), so no socket file exists anywhere. The child lives as long as that
socket: when this process closes it, exits or is killed, the child sees EOF and exits; when the
child dies, we see EOF at once.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
from typing import Deque, Dict, List, Mapping, Optional, Sequence

from .errors import CLOSED, INVALID_OPTION, GpufeedError
from .protocol import Channel

log = logging.getLogger("gpufeed")

ENV_CMD = "GPUFEED_NODE_CMD"
STDERR_TAIL_BYTES = 64 << 10
_ERROR_LINE = re.compile(r"gpufeed: error (GPUFEED_[A-Z_]+): (.*)")


def server_command(node_cmd: Optional[Sequence[str]] = None) -> List[str]:
    if node_cmd:
        return list(node_cmd)
    env = os.environ.get(ENV_CMD, "").strip()
    if env:
        return shlex.split(env)
    found = shutil.which("gpufeed")
    if found:
        return [found]
    raise GpufeedError(
        INVALID_OPTION,
        f"cannot find the gpufeed command: install the gpufeed npm package so that `gpufeed` is on PATH, "
        f"or set {ENV_CMD} (e.g. '{ENV_CMD}=node /path/to/gpufeed/bin/gpufeed.js')",
        {"option": ENV_CMD},
    )


class _StderrTail(threading.Thread):
    """Drains the child's stderr (so it never blocks on a full pipe), keeps its tail for error
    messages and logs each line to the ``gpufeed`` logger (pinning warnings, for instance)."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name="gpufeed-serve-stderr", daemon=True)
        self._stream = stream
        self._lines: Deque[str] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        # Ends at EOF, i.e. when the child (and anything it passed stderr to) has exited.
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._lines.append(line)
                self._bytes += len(line) + 1
                while self._bytes > STDERR_TAIL_BYTES and len(self._lines) > 1:
                    self._bytes -= len(self._lines.popleft()) + 1
            if line.strip():
                (log.debug if _ERROR_LINE.search(line) else log.warning)("gpufeed serve: %s", line)
        try:
            self._stream.close()
        except OSError:
            pass

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._lines)


# The server's main thread passes only small control messages (the rows are in shared memory), but
# V8 grows its young generation towards 16 MiB per semi-space over the first epochs: RSS that
# rises 5-10% after epoch 2 and looks like a leak. 1 MiB keeps it flat and 10-15 MiB lower; the
# decode workers size theirs themselves (loader.ts). A NODE_OPTIONS that sets it already wins.
SERVER_NODE_OPTIONS = "--max-semi-space-size=1"


def server_env(env: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """The environment of ``gpufeed serve``: ``env`` (default: ours) with SERVER_NODE_OPTIONS added to NODE_OPTIONS."""
    out = dict(os.environ if env is None else env)
    options = out.get("NODE_OPTIONS", "")
    if "max-semi-space-size" not in options:
        out["NODE_OPTIONS"] = f"{options} {SERVER_NODE_OPTIONS}".strip()
    return out


class ServerProcess:
    """A running ``gpufeed serve`` and the channel to it."""

    def __init__(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fd = theirs.fileno()
            cmd = list(argv) + ["--fd", str(fd)]
            try:
                self.proc = subprocess.Popen(
                    cmd,
                    pass_fds=(fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=server_env(env),
                    close_fds=True,
                )
            except OSError as e:
                ours.close()
                raise GpufeedError(INVALID_OPTION, f"cannot start {cmd[0]!r}: {e.strerror or e}", {"option": ENV_CMD, "path": cmd[0]}) from None
        finally:
            # Only the child may hold its end: our copy would hide its death (no EOF).
            theirs.close()
        self.pid = self.proc.pid
        self.channel = Channel(ours)
        self._stderr = _StderrTail(self.proc.stderr)
        self._stderr.start()

    def check_alive(self) -> None:
        """Raises GpufeedError CLOSED when the child has exited."""
        code = self.proc.poll()
        if code is not None:
            raise self.exit_error(code)

    def exit_error(self, code: Optional[int] = None, before_hello: bool = False) -> GpufeedError:
        """What to raise for a child that is gone: its own error line from stderr when it printed one
        before exiting (the fallback when it could not say it on the socket), else CLOSED."""
        if code is None:
            try:
                code = self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
        self._stderr.join(timeout=1.0)
        tail = self._stderr.text()
        found = None
        for m in _ERROR_LINE.finditer(tail):
            found = m
        if found is not None:
            return GpufeedError(found.group(1), found.group(2), {"exitCode": code})
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"exited with {code}"
        else:
            how = f"exited with status {code}" if code is not None else "closed its socket"
        when = " before it was ready" if before_hello else ""
        detail = f": {tail.strip()[-2000:]}" if tail.strip() else ""
        return GpufeedError(CLOSED, f"the gpufeed server (pid {self.pid}) {how}{when}{detail}", {"exitCode": code, "pid": self.pid})

    def close(self, timeout: float = 5.0) -> None:
        """Asks the child to stop, closes our end (EOF stops it anyway) and reaps it; kills it if it
        does not exit within ``timeout``. Idempotent."""
        if self.proc.returncode is None:
            try:
                self.channel.send({"type": "close"})
            except GpufeedError:
                pass
        self.channel.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
        self._stderr.join(timeout=1.0)
