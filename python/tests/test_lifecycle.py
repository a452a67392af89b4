"""Either side dying, closing, or being collected leaves nothing behind: no process, no mapping,
nothing in /dev/shm, no socket file."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import gpufeed
from conftest import ROOT, open_loader, pid_alive, slab_mappings


def wait_gone(pid: int, seconds: float) -> float:
    """Waits for `pid` to go; `seconds` only bounds a hang (the tests assert that it goes, not how fast)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if not pid_alive(pid):
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still alive after {seconds} s")


def shm_listing():
    return sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []


def path_sockets(pid: int):
    """Unix sockets of `pid` bound to a path (a socket file); a socketpair has none."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    bound = []
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[6] in inodes and not parts[7].startswith("@"):
                bound.append(parts[7])
    return inodes, bound


def test_server_killed_raises_closed_fast(datasets):
    loader = open_loader(datasets["arrow"], batch_size=16)
    it = iter(loader)
    next(it)
    pid = loader.server_pid
    inodes, bound = path_sockets(pid)
    assert inodes and not bound, f"the server's sockets are a socketpair, no socket file: {bound}"
    slots = loader.slots
    os.kill(pid, signal.SIGKILL)
    after_kill = 0
    with pytest.raises(gpufeed.GpufeedError) as e:
        for _ in range(100):
            next(it)
            after_kill += 1
    assert e.value.code == "GPUFEED_CLOSED"
    # Noticed through the process's exit (named by its signal), not the reply timeout, and
    # at the latest once the batches already decoded are used up (a count, not a clock).
    assert "SIGKILL" in e.value.message and "within" not in e.value.message, e.value.message
    assert after_kill <= slots, f"{after_kill} batches after the server was killed"
    assert not pid_alive(pid), "the dead server is reaped, not left a zombie"
    assert slab_mappings() == 0
    with pytest.raises(gpufeed.GpufeedError) as again:
        list(loader)
    assert again.value.code == "GPUFEED_CLOSED", "the failure sticks until load_state_dict"
    loader.close()


def test_python_killed_server_exits(datasets, tmp_path):
    shm_before = shm_listing()
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / 'python')!r})
        import gpufeed
        loader = gpufeed.Loader({datasets['arrow']!r}, batch_size=16, workers=2, as_numpy=True)
        batch = next(iter(loader))
        print(loader.server_pid, flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = p.stdout.readline()
        server = int(line)
        assert pid_alive(server)
        assert slab_mappings(str(p.pid)) > 0, "the client mapped the slabs"
        shm_during = shm_listing()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
        # The server goes by itself once its client is gone; the bound only guards against a hang.
        wait_gone(server, 60.0)
    finally:
        if p.poll() is None:
            p.kill()
    assert shm_during == shm_before and shm_listing() == shm_before, "nothing in /dev/shm, ever"
    assert [f for f in os.listdir(tmp_path) if not f.startswith(".")] == [], "no socket file in the working directory"


def test_close_reaps_server_and_unmaps(datasets):
    loader = open_loader(datasets["arrow"], batch_size=16)
    b = next(iter(loader))
    held = b["tokens"]  # a raw array the user kept past close
    expect = held.copy()
    pid = loader.server_pid
    assert slab_mappings() == loader.slots
    loader.close()
    assert not pid_alive(pid)
    # The mapping that the array uses stays valid (the server is gone, nothing rewrites it)...
    assert (held == expect).all()
    assert slab_mappings() >= 1
    del held, b
    gc.collect()
    # ...and goes with the last array over it.
    assert slab_mappings() == 0
    loader.close()  # idempotent
    with pytest.raises(gpufeed.GpufeedError) as e:
        list(loader)
    assert e.value.code == "GPUFEED_CLOSED"


def test_collected_loader_stops_its_server(datasets):
    loader = open_loader(datasets["arrow"], batch_size=16)
    next(iter(loader))
    pid = loader.server_pid
    del loader
    gc.collect()
    wait_gone(pid, 60.0)
    assert slab_mappings() == 0


def test_exit_without_close_leaves_no_server(datasets, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'python')!r})
        import gpufeed
        loader = gpufeed.Loader({datasets['arrow']!r}, batch_size=16, workers=2, as_numpy=True)
        it = iter(loader)
        batch = next(it)
        print(loader.server_pid, flush=True)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    wait_gone(int(p.stdout.strip()), 60.0)


def test_forked_copy_neither_iterates_nor_stops_the_server(datasets):
    loader = open_loader(datasets["arrow"], batch_size=16, epochs=1)
    it = iter(loader)
    first = next(it)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        code = 0
        try:
            list(loader)
            code = 1
        except gpufeed.GpufeedError as e:
            code = 0 if e.code == "GPUFEED_INVALID_OPTION" else 2
        except BaseException:
            code = 3
        # Collecting the copy (as at a normal exit) must not send `close` to the parent's server.
        del loader, it, first
        gc.collect()
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len([first.step] + [b.step for b in it]) == loader.steps_per_epoch
    loader.close()


def test_interrupted_request_loses_nothing(datasets):
    # Ctrl-C between a request and its reply: the reply is read later, its batch handed out next.
    with open_loader(datasets["arrow"], batch_size=16, epochs=1) as loader:
        it = iter(loader)
        assert next(it).step == 0
        s = loader._live()
        real = s.recv

        def interrupted(timeout):
            s.recv = real
            raise KeyboardInterrupt

        s.recv = interrupted
        with pytest.raises(KeyboardInterrupt):
            next(it)
        state = loader.state_dict()
        assert state["stepsDone"] == 2, "the interrupted request's batch counts as delivered"
        assert [b.step for b in loader] == list(range(1, loader.steps_per_epoch))


def server_node_options(pid: int) -> str:
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    return env.get(b"NODE_OPTIONS", b"").decode()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/environ")
def test_server_young_generation_is_capped_unless_node_options_say_otherwise(datasets):
    # The cap keeps the server's RSS flat after its first epochs (child.py, SERVER_NODE_OPTIONS);
    # the caller's other NODE_OPTIONS stay, and a semi-space size of its own replaces ours.
    cases = [
        (None, f"{os.environ.get('NODE_OPTIONS', '')} --max-semi-space-size=1".strip()),
        ({**os.environ, "NODE_OPTIONS": "--no-warnings"}, "--no-warnings --max-semi-space-size=1"),
        ({**os.environ, "NODE_OPTIONS": "--max-semi-space-size=4"}, "--max-semi-space-size=4"),
    ]
    for env, want in cases:
        loader = open_loader(datasets["arrow"], batch_size=64, env=env)
        try:
            assert next(iter(loader)).size == 64
            assert server_node_options(loader.server_pid) == want
        finally:
            loader.close()
