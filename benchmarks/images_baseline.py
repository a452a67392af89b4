"""PyTorch-style image baseline for `npm run bench` section 9: per sample, Pillow decodes the
JPEG, a RandomResizedCrop (torchvision's rule, written here in plain Python: torchvision is not
needed) and a horizontal flip are applied, and the result becomes a CHW uint8 tensor; batches come
from a torch.utils.data.DataLoader with as many worker processes as gpufeed has threads. Without
torch it falls back to a multiprocessing.Pool doing the same work (and says so).

  python3 images_baseline.py FILE_LIST SIZE WORKERS BATCH SECONDS   -> one JSON line
  python3 images_baseline.py --check BOXES_JSON SIZE FILE...         -> HWC pixels of given boxes
"""
from __future__ import annotations
import json
import math
import os
import random
import sys
import time

import numpy as np
from PIL import Image


def rrc_params(width: int, height: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class Images:
    def __init__(self, files, size):
        self.files = files
        self.size = size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        rng = random.Random(i * 7919 + os.getpid())
        with Image.open(self.files[i]) as im:
            im = im.convert("RGB")
            top, left, h, w = rrc_params(im.width, im.height, rng)
            im = im.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + w, top + h))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


def _clock_ticks():
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


def cpu_now():
    """CPU seconds of this process and all its children so far: its own, the reaped children's
    (os.times), and the live ones' from /proc (worker processes still running, or exited but not
    yet reaped). Read at the first batch and at the end, it gives the steady window's CPU, as
    gpufeed's side counts it (process CPU after the first batch)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    me = os.getpid()
    tick = _clock_ticks()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return total
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after the command (which may hold spaces): state ppid ... utime(14) stime(15).
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 13 and int(rest[1]) == me:
            total += (int(rest[11]) + int(rest[12])) / tick
    return total


def run_torch(ds, workers, batch, seconds):
    import torch
    from torch.utils.data import DataLoader

    def collate(items):
        return torch.from_numpy(np.stack(items))

    torch.set_num_threads(1)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate, drop_last=True, persistent_workers=False, prefetch_factor=2)
    n = 0
    first = None
    deadline = None
    cpu0 = cpu1 = 0.0
    for _ in range(1000):
        for b in loader:
            now = time.perf_counter()
            if first is None:
                first = now
                deadline = now + seconds
                cpu0 = cpu_now()
                continue
            n += b.shape[0]
            if now >= deadline:
                break
        if deadline is not None and time.perf_counter() >= deadline:
            # Before the workers are shut down: their CPU is read live.
            cpu1 = cpu_now()
            break
    return n, time.perf_counter() - first, "torch.utils.data.DataLoader", cpu1 - cpu0


def _item(args):
    ds, i = args
    return ds[i].shape[0]


def run_pool(ds, workers, batch, seconds):
    import multiprocessing as mp
    order = list(range(len(ds)))
    with mp.Pool(workers) as pool:
        n = 0
        first = None
        deadline = None
        cpu0 = cpu1 = 0.0
        for _ in range(1000):
            random.shuffle(order)
            for _k in pool.imap(_item, [(ds, i) for i in order], chunksize=batch):
                now = time.perf_counter()
                if first is None:
                    first = now
                    deadline = now + seconds
                    cpu0 = cpu_now()
                    continue
                n += 1
                if now >= deadline:
                    break
            if deadline is not None and time.perf_counter() >= deadline:
                cpu1 = cpu_now()
                break
        pool.terminate()
    return n, time.perf_counter() - first, "multiprocessing.Pool (torch not importable)", cpu1 - cpu0


def main():
    if sys.argv[1] == "--check":
        boxes = json.loads(sys.argv[2])
        size = int(sys.argv[3])
        out = []
        for f, b in zip(sys.argv[4:], boxes):
            with Image.open(f) as im:
                # crop, then resize (as torchvision's resized_crop): resize(box=) would sample past the box's edges.
                im = im.convert("RGB").crop((b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"])).resize((size, size), Image.BILINEAR)
                if b.get("flip"):
                    im = im.transpose(Image.FLIP_LEFT_RIGHT)
                out.append(np.asarray(im).reshape(-1).tolist())
        print(json.dumps(out))
        return
    with open(sys.argv[1]) as fh:
        files = [line.strip() for line in fh if line.strip()]
    size, workers, batch, seconds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    ds = Images(files, size)
    t0 = os.times()
    try:
        import torch  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken torch install counts as none
        n, elapsed, how, steady_cpu = run_pool(ds, workers, batch, seconds)
    else:
        n, elapsed, how, steady_cpu = run_torch(ds, workers, batch, seconds)
    t1 = os.times()
    cpu = (t1.user - t0.user) + (t1.system - t0.system) + (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    # cpu_seconds: the whole run (torch's import, worker start-up, prefetched batches never taken);
    # steady_cpu_seconds: from the first batch to the last counted one, the span `images` covers.
    print(json.dumps({"images": n, "seconds": elapsed, "images_per_s": n / elapsed if elapsed > 0 else 0, "cpu_seconds": cpu, "steady_cpu_seconds": steady_cpu, "how": how}))


if __name__ == "__main__":
    main()
