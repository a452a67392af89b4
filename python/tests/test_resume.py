"""state_dict() / load_state_dict(): the first k batches plus the resumed rest are the full run."""
from __future__ import annotations

import json

import pytest

import gpufeed
from conftest import dump, open_loader

OPTS = dict(batch_size=24, shuffle="window", shuffle_window=40, seed=11, epochs=2)


def ids_of(loader, epochs):
    out = []
    for _ in range(epochs):
        out += [(b.epoch, b.step, tuple(b.ids.tolist())) for b in loader]
    return out


@pytest.fixture(scope="module")
def full(datasets):
    with open_loader(datasets["arrow"], **OPTS) as loader:
        return ids_of(loader, 2)


@pytest.mark.parametrize("k", [1, 5, 9, 12])  # mid-epoch, just before / after / past the epoch end (9 steps)
def test_resume_in_a_new_loader_is_exact(datasets, full, k):
    with open_loader(datasets["arrow"], **OPTS) as loader:
        first = []
        for _ in range(2):
            for b in loader:
                first.append((b.epoch, b.step, tuple(b.ids.tolist())))
                if len(first) == k:
                    break
            if len(first) == k:
                break
        state = loader.state_dict()
    state = json.loads(json.dumps(state))  # as a checkpoint would store it
    assert state["format"] == "gpufeed-resume"
    with open_loader(datasets["arrow"], **OPTS) as resumed:
        resumed.load_state_dict(state)
        assert resumed.state_dict() == state, "state before any batch is the one loaded"
        rest = ids_of(resumed, 2)
    assert first + [r for r in rest] == full


def test_state_matches_the_js_loader(datasets, tmp_path):
    # The Node CLI's --state-out after 4 batches is the state the Python client reports after 4.
    out = tmp_path / "state.json"
    dump(datasets["arrow"], "--batch-size", "24", "--shuffle", "window", "--shuffle-window", "40", "--seed", "11",
         "--epochs", "2", "--max-batches", "4", "--state-out", str(out))
    with open_loader(datasets["arrow"], **OPTS) as loader:
        it = iter(loader)
        for _ in range(4):
            next(it)
        assert loader.state_dict() == json.loads(out.read_text())


def test_load_state_dict_on_a_running_loader(datasets, full):
    with open_loader(datasets["arrow"], **OPTS) as loader:
        it = iter(loader)
        for _ in range(3):
            next(it)
        state = loader.state_dict()
        for _ in range(3):
            next(it)
        old_pid = loader.server_pid
        loader.load_state_dict(state)
        rest = ids_of(loader, 2)
        assert loader.server_pid != old_pid
    assert full[:3] + rest == full


def test_state_that_does_not_fit_is_refused(datasets):
    with open_loader(datasets["arrow"], **OPTS) as loader:
        state = loader.state_dict()
    with open_loader(datasets["arrow"], **{**OPTS, "batch_size": 16}) as other:
        other.load_state_dict(state)
        with pytest.raises(gpufeed.GpufeedError) as e:
            list(other)
        assert e.value.code == "GPUFEED_RESUME_MISMATCH"
    with pytest.raises(gpufeed.GpufeedError) as e:
        open_loader(datasets["arrow"], **OPTS).load_state_dict({"epoch": 1})
    assert e.value.code == "GPUFEED_INVALID_OPTION"
