#!/usr/bin/env python3
"""A PyTorch training loop fed two ways over the same Parquet shards, in one run:

  1. gpufeed: gpufeed.Loader (decode threads in the Node server, batches in pinned shared memory,
     mapped here with no copy, registered with CUDA);
  2. baseline: torch.utils.data.DataLoader over a pyarrow IterableDataset (worker processes,
     pin_memory=True), the common way to read Parquet in PyTorch.

The model is small on purpose (an embedding bag and an MLP): the point is how well each input
pipeline keeps the GPU busy. For each: samples/s over the timed steps, data-wait % (host time spent
waiting for the next batch, over wall time), host-to-device GB/s (bytes copied over the GPU time of
those copies, from CUDA events). Prints a table and writes JSON.

    python3 benchmarks/gpu/torch_loop.py --make-demo 200000 --seq-len 512 --dataset /tmp/demo-parquet
    python3 benchmarks/gpu/torch_loop.py --dataset /data/my-parquet-dataset --x input_ids --y label

Needs torch with CUDA, pyarrow, numpy, node, and a built gpufeed (npm install). The server command
is $GPUFEED_NODE_CMD, else `node <repo>/bin/gpufeed.js`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="gpufeed dataset folder with Parquet shards (made with --make-demo if given)")
    p.add_argument("--make-demo", type=int, metavar="ROWS", help="first write a demo Parquet dataset of ROWS rows to --dataset")
    p.add_argument("--seq-len", type=int, default=512, help="demo: int32 tokens per row (default 512)")
    p.add_argument("--x", default="input_ids", help="fixed-shape integer token column (default input_ids)")
    p.add_argument("--y", default="label", help="integer class column (default label)")
    p.add_argument("--vocab", type=int, default=50257, help="embedding rows; token ids are taken modulo this")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2, help="hidden MLP layers")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300, help="timed steps per pipeline")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (server/worker start, cuDNN, allocator)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="gpufeed decode threads and DataLoader workers")
    p.add_argument("--prefetch", type=int, default=4, help="DataLoader prefetch_factor")
    p.add_argument("--shuffle", choices=["none", "window"], default="none",
                   help="window: gpufeed's window shuffle; the baseline shuffles shard order and rows within a row group")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["gpufeed", "dataloader"], help="run one pipeline")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "torch_loop.json"), help="JSON results file")
    return p.parse_args(argv)


# -- dataset -----------------------------------------------------------------------------------


def make_demo(path: str, rows: int, seq_len: int) -> None:
    module = (ROOT / "dist" / "src" / "dataset" / "index.js").as_uri()
    script = (
        f"const {{ makeDemoDataset }} = await import({json.dumps(module)});"
        f"await makeDemoDataset({json.dumps(path)}, {{ rows: {rows}, seqLen: {seq_len}, format: 'parquet', overwrite: true }});"
    )
    print(f"writing a demo dataset: {rows} rows of {seq_len} int32 tokens, Parquet, to {path}", file=sys.stderr)
    subprocess.run(["node", "--input-type=module", "-e", script], check=True)


def parquet_shards(dataset: str) -> Tuple[List[str], int]:
    with open(os.path.join(dataset, "index.json")) as f:
        manifest = json.load(f)
    shards = manifest["shards"]
    formats = {s["format"] for s in shards}
    if formats != {"parquet"}:
        raise SystemExit(f"the baseline reads Parquet; {dataset} has {sorted(formats)} shards (use --make-demo, or prep with --format parquet)")
    return [os.path.join(dataset, s["path"]) for s in shards], int(manifest["rows"])


# -- the baseline: DataLoader over pyarrow ------------------------------------------------------


def parquet_dataset(files: List[str], columns: List[str], batch_size: int, shuffle: bool, seed: int) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    def to_numpy(col: "pa.ChunkedArray | pa.Array") -> np.ndarray:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            # Fixed-shape columns: every row has the same length, so the flat values reshape.
            values = col.flatten().to_numpy(zero_copy_only=False)
            return values.reshape(len(col), -1)
        return col.to_numpy(zero_copy_only=False)

    class ParquetBatches(IterableDataset):
        """Endless batches; each worker reads its own shards (round robin), every epoch."""

        def __iter__(self) -> Iterator[Dict[str, Any]]:
            info = get_worker_info()
            wid, nw = (info.id, info.num_workers) if info else (0, 1)
            mine = files[wid::nw]
            rng = random.Random(seed * 1009 + wid)
            for epoch in range(1 << 30):  # endless; the loop stops reading after its steps
                order = list(mine)
                if shuffle:
                    rng.shuffle(order)
                for path in order:
                    pf = pq.ParquetFile(path)
                    for rb in pf.iter_batches(batch_size=batch_size, columns=columns):
                        arrays = {c: to_numpy(rb.column(c)) for c in columns}
                        if shuffle:
                            perm = np.random.default_rng(rng.randrange(1 << 32)).permutation(rb.num_rows)
                            arrays = {c: a[perm] for c, a in arrays.items()}
                        yield {c: torch.from_numpy(np.ascontiguousarray(a)) for c, a in arrays.items()}

    return ParquetBatches()


# -- the loop ----------------------------------------------------------------------------------


def build_model(args: argparse.Namespace, device: Any) -> Tuple[Any, Any]:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.EmbeddingBag(args.vocab, args.hidden, mode="mean")
            layers: List[nn.Module] = []
            for _ in range(args.layers):
                layers += [nn.Linear(args.hidden, args.hidden), nn.GELU()]
            self.mlp = nn.Sequential(*layers)
            self.head = nn.Linear(args.hidden, args.classes)

        def forward(self, tokens: "torch.Tensor") -> "torch.Tensor":
            return self.head(self.mlp(self.embed(tokens)))

    torch.manual_seed(args.seed)
    model = Net().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt


def train(
    name: str,
    batches: Callable[[], Iterable[Tuple[Any, Any]]],
    args: argparse.Namespace,
    device: Any,
) -> Dict[str, Any]:
    """Runs warmup + timed steps over (x, y) CPU tensor pairs from `batches()`; returns figures."""
    import torch
    import torch.nn.functional as F

    model, opt = build_model(args, device)
    total = args.warmup + args.steps
    wait_s = 0.0
    samples = 0
    h2d_bytes = 0
    copy_events: List[Tuple[Any, Any]] = []
    pinned: Optional[bool] = None
    t_start = time.perf_counter()
    step = 0
    source = iter(batches())
    t0 = time.perf_counter()
    while step < total:
        if step == args.warmup:
            # The timed window starts with an idle GPU: warmup work must not count.
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        timed = step >= args.warmup
        w0 = time.perf_counter()
        x_cpu, y_cpu = next(source)
        w1 = time.perf_counter()
        if pinned is None:
            pinned = bool(x_cpu.is_pinned())
        if timed:
            wait_s += w1 - w0
            e0 = torch.cuda.Event(enable_timing=True)
            e1 = torch.cuda.Event(enable_timing=True)
            e0.record()
        x = x_cpu.to(device, non_blocking=True)
        y = y_cpu.to(device, non_blocking=True)
        if timed:
            e1.record()
            copy_events.append((e0, e1))
            h2d_bytes += x_cpu.numel() * x_cpu.element_size() + y_cpu.numel() * y_cpu.element_size()
            samples += int(x_cpu.shape[0])
        tokens = x.long().remainder_(args.vocab)
        logits = model(tokens)
        loss = F.cross_entropy(logits, y.long().remainder_(args.classes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    copy_ms = sum(a.elapsed_time(b) for a, b in copy_events)
    close = getattr(source, "close", None)
    if close:
        close()
    return {
        "pipeline": name,
        "steps": args.steps,
        "samples": samples,
        "seconds": wall,
        "samplesPerSecond": samples / wall if wall > 0 else 0.0,
        "dataWaitPercent": 100.0 * wait_s / wall if wall > 0 else 0.0,
        "h2dGBps": h2d_bytes / (copy_ms / 1e3) / 1e9 if copy_ms > 0 else 0.0,
        "h2dBytes": h2d_bytes,
        "pinnedSource": pinned,
        "finalLoss": float(loss.item()),
        "startupSeconds": t0 - t_start,
    }


def gpufeed_batches(args: argparse.Namespace) -> Callable[[], Iterator[Tuple[Any, Any]]]:
    try:
        import gpufeed
    except ImportError:
        sys.path.insert(0, str(ROOT / "python"))
        import gpufeed

    def gen() -> Iterator[Tuple[Any, Any]]:
        loader = gpufeed.Loader(
            args.dataset, batch_size=args.batch_size, columns=[args.x, args.y], shuffle=args.shuffle, seed=args.seed,
            workers=args.workers, epochs=None,
        )
        try:
            for _ in range(1 << 30):  # epochs, until the loop has its steps
                n = 0
                for batch in loader:
                    n += 1
                    # Views of pinned shared memory; the loader holds the slot until the copies that
                    # read it (queued before the next request) are done.
                    yield batch[args.x], batch[args.y]
                if n == 0:
                    return
        finally:
            loader.close()

    return gen


def dataloader_batches(args: argparse.Namespace, files: List[str]) -> Callable[[], Iterator[Tuple[Any, Any]]]:
    from torch.utils.data import DataLoader

    def gen() -> Iterator[Tuple[Any, Any]]:
        ds = parquet_dataset(files, [args.x, args.y], args.batch_size, args.shuffle != "none", args.seed)
        dl = DataLoader(
            ds, batch_size=None, num_workers=args.workers, pin_memory=True,
            prefetch_factor=args.prefetch if args.workers > 0 else None, persistent_workers=False,
            # fork: the dataset class is local (torch is imported lazily), so it cannot be pickled
            # for spawn/forkserver; workers never touch CUDA, so forking after CUDA init is safe.
            multiprocessing_context="fork" if args.workers > 0 else None,
        )
        it = iter(dl)
        try:
            for _ in range(1 << 62):
                b = next(it)
                yield b[args.x], b[args.y]
        finally:
            del it  # shuts the worker processes down

    return gen


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GPUFEED_NODE_CMD", f"node {ROOT / 'bin' / 'gpufeed.js'}")
    if args.make_demo:
        make_demo(args.dataset, args.make_demo, args.seq_len)
    files, rows = parquet_shards(args.dataset)

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (torch.cuda.is_available() is False)")
    device = torch.device("cuda", torch.cuda.current_device())
    torch.backends.cudnn.benchmark = True

    results: List[Dict[str, Any]] = []
    if args.only in (None, "gpufeed"):
        results.append(train("gpufeed", gpufeed_batches(args), args, device))
    if args.only in (None, "dataloader"):
        results.append(train("dataloader+pyarrow", dataloader_batches(args, files), args, device))

    header = f"{'pipeline':<22}{'samples/s':>12}{'data wait':>11}{'H2D GB/s':>10}{'pinned':>8}{'startup s':>11}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['pipeline']:<22}{r['samplesPerSecond']:>12.0f}{r['dataWaitPercent']:>10.1f}%{r['h2dGBps']:>10.2f}"
              f"{str(r['pinnedSource']):>8}{r['startupSeconds']:>11.2f}")

    report = {
        "benchmark": "torch_loop",
        "dataset": {"path": args.dataset, "rows": rows, "shards": len(files)},
        "config": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "machine": {
            "gpu": torch.cuda.get_device_name(device),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
