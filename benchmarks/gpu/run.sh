#!/usr/bin/env bash
# The GPU check in one call, for a session lent a GPU machine (see README, "Performance"):
# builds what is missing, runs h2d.py (host-to-device GB/s of gpufeed's pinned slots against
# pageable and torch-pinned memory) and torch_loop.py (a PyTorch loop fed by gpufeed and by
# DataLoader + pyarrow over the same Parquet: samples/s, data-wait, H2D GB/s), and writes one JSON.
#
#   source .device/env.sh && bash benchmarks/gpu/run.sh [OUT.json]      (default $OUT/gpu.json or
#                                                                          benchmarks/results/gpu.json)
# Knobs (environment): GPU_ROWS (demo rows, 100000), GPU_SEQ_LEN (512), GPU_STEPS (200).
# Exits 3, saying why, where there is no CUDA device, no torch or no node: it measures nothing then.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-${OUT:-benchmarks/results}/gpu.json}
mkdir -p "$(dirname "$out")"
refuse() { echo "benchmarks/gpu/run.sh: refusing: $*" >&2; exit 3; }
command -v node >/dev/null || refuse "no node on PATH (on the GPU machine: source .device/env.sh first)"
python3 -c 'import torch' 2>/dev/null || refuse "python3 has no torch"
python3 -c 'import pyarrow' 2>/dev/null || refuse "python3 has no pyarrow (torch_loop.py's DataLoader baseline reads Parquet with it)"
python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || refuse "torch sees no CUDA device: this check needs a GPU machine"
if [ ! -f native/build/Release/gpufeed_native.node ]; then npx node-gyp rebuild --directory native; fi
if [ ! -f dist/src/index.js ] || [ ! -f dist/benchmarks/gpu/slab-helper.js ]; then npx tsc -p tsconfig.json; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
echo "== h2d.py" >&2
timeout 120 python3 benchmarks/gpu/h2d.py 64 > "$tmp/h2d-64.json"
timeout 120 python3 benchmarks/gpu/h2d.py 512 > "$tmp/h2d-512.json"
echo "== torch_loop.py" >&2
timeout 420 python3 benchmarks/gpu/torch_loop.py --make-demo "${GPU_ROWS:-100000}" --seq-len "${GPU_SEQ_LEN:-512}" \
  --steps "${GPU_STEPS:-200}" --dataset "$tmp/demo-parquet" --out "$tmp/torch_loop.json"
python3 - "$tmp" "$out" <<'PY'
import json, sys, os, platform
tmp, out = sys.argv[1], sys.argv[2]
def load(name):
    with open(os.path.join(tmp, name)) as f:
        text = f.read().strip().splitlines()
    return json.loads(text[-1]) if name.startswith("h2d") else json.loads("\n".join(text))
result = {"host": platform.node(), "h2d": {"batch_64": load("h2d-64.json"), "batch_512": load("h2d-512.json")},
          "torch_loop": load("torch_loop.json")}
with open(out, "w") as f:
    json.dump(result, f, indent=2)
print(json.dumps(result, indent=2))
PY
echo "benchmarks/gpu/run.sh: wrote $out" >&2
