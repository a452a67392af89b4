"""Host-to-device copy speed of gpufeed's pinned batch slots vs pageable memory (and torch's own
pinned memory as a reference). Needs a CUDA GPU and torch; run from the repository root after
`npm run build`:  python benchmarks/gpu/h2d.py [batch_size]

The slabs are page-locked by gpufeed (mlock, and cuMemHostRegister in gpufeed's process). CUDA
pinning is per process, so this process registers its own mapping with cudaHostRegister, as the
Python client does, before copying with non_blocking=True.
"""
import json, mmap, os, subprocess, sys
import torch

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 64
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
helper = subprocess.Popen(["node", os.path.join(root, "dist", "benchmarks", "gpu", "slab-helper.js"), str(batch)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root)
try:
    info = json.loads(helper.stdout.readline())["slabs"][0]
    fd = os.open(f"/proc/{info['pid']}/fd/{info['fd']}", os.O_RDWR)
    try:
        m = mmap.mmap(fd, info["bytes"], mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    n = info["batch_bytes"]
    slab = torch.frombuffer(m, dtype=torch.uint8)[:n]
    cudart = torch.cuda.cudart()
    # cudaHostRegisterDefault = 0; the mapping is page-aligned (a whole memfd mapping).
    rc = cudart.cudaHostRegister(slab.data_ptr(), info["bytes"], 0)
    registered = int(rc) == 0
    pageable = torch.empty(n, dtype=torch.uint8).copy_(slab)
    torch_pinned = torch.empty(n, dtype=torch.uint8, pin_memory=True).copy_(slab)
    dev = torch.empty(n, dtype=torch.uint8, device="cuda")

    def gbps(src, reps=50):
        for _ in range(5):
            dev.copy_(src, non_blocking=True)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            dev.copy_(src, non_blocking=True)
        end.record()
        torch.cuda.synchronize()
        return n * reps / (start.elapsed_time(end) / 1e3) / 1e9

    g_slab, g_page, g_torch = gbps(slab), gbps(pageable), gbps(torch_pinned)
    assert torch.equal(dev.cpu(), slab), "device copy differs from the gpufeed batch"
    print(json.dumps({
        "batch_bytes": n, "slab_kind": info["kind"], "cuda_registered_here": registered,
        "gpufeed_pinned_gbps": round(g_slab, 2), "pageable_gbps": round(g_page, 2), "torch_pinned_gbps": round(g_torch, 2),
        "ratio_vs_pageable": round(g_slab / g_page, 2), "device": torch.cuda.get_device_name(),
    }))
    if registered:
        cudart.cudaHostUnregister(slab.data_ptr())
    del slab
    m.close()
finally:
    helper.stdin.close()
    helper.wait(timeout=30)
