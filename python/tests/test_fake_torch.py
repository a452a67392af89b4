"""The torch code path, run against a recording stand-in for torch (tests/fake_torch) in a
subprocess: tensors from numpy, CUDA host registration of every slab (and unregistration at
close), and releases deferred until the CUDA event recorded at hand-back completes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch, gpufeed
    from gpufeed import _torch
    assert _torch.torch is torch and issubclass(gpufeed.Loader, torch.utils.data.IterableDataset)
    out = {}
    loader = gpufeed.Loader(sys.argv[1], batch_size=16, workers=1, slots=4, epochs=1, timeout=30)
    it = iter(loader)
    b = next(it)
    out["tensor"] = isinstance(b["tokens"], torch.Tensor) and isinstance(b["tags"].values, torch.Tensor)
    out["registered"] = loader.cuda_registered
    out["slots"] = loader.slots
    sizes = {m.id: m.bytes for m in loader._live().maps.values()}
    regs = [e for e in torch.cuda.log if e[0] == "register"]
    out["register_sizes_ok"] = sorted(e[2] for e in regs) == sorted(sizes.values()) and all(e[3] == 0 for e in regs)
    # Events never complete by themselves here: hand-backs must wait, at most MAX_PENDING at a time,
    # and never leave fewer than one slot to the server.
    held_max = 0
    steps = [b.step]
    values_ok = True
    for b in it:
        steps.append(b.step)
        held_max = max(held_max, len(loader._pending) + len(loader._kept))
        # Batches waiting for their event still hold their own rows: the server has not reused them.
        for x in [b] + [p[0] for p in loader._pending]:
            want = [[(int(i) * 131 + k * 7) % 50000 for k in range(16)] for i in x.ids]
            values_ok &= x["tokens"].tolist() == want
        if b.step == 5:
            torch.cuda.complete_all()
    out["steps"] = steps
    out["held_max"] = held_max
    out["values_ok"] = values_ok
    out["synchronized"] = sum(1 for e in torch.cuda.log if e[0] == "synchronize")
    out["recorded"] = sum(1 for e in torch.cuda.log if e[0] == "record")
    loader.close()
    out["unregistered"] = sorted(e[1] for e in torch.cuda.log if e[0] == "unregister") == sorted(e[1] for e in regs)
    print(json.dumps(out))
""")


def test_torch_path_with_a_recording_torch(datasets):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent / "fake_torch"), str(ROOT / "python")])
    env.pop("GPUFEED_NO_TORCH", None)
    p = subprocess.run([sys.executable, "-c", SCRIPT, datasets["arrow"]], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["tensor"] and out["registered"] and out["register_sizes_ok"] and out["unregistered"]
    assert out["steps"] == list(range(13))
    assert out["values_ok"], "a deferred release never let the server overwrite a batch in use"
    assert out["recorded"] == 13, "one event per batch handed back (the last one when asking past it)"
    assert out["synchronized"] > 0, "with events pending, the oldest is waited for"
    assert out["held_max"] <= out["slots"] - 1
