#!/usr/bin/env bash
# CNN child training step: tch (this project) vs PyTorch eager, side by side.
#
# Builds the release benchmark, writes a fixed panel of sampled architectures
# and one batch (bench_cnn_step prepare), then runs the tch side and the
# PyTorch side (scripts/bench/cnn_step_reference.py) alternately, architecture
# by architecture, ROUNDS times, so machine noise hits both alike, and prints
# one JSON line:
# per-architecture median step times, their ratio tch/PyTorch, the ratio of
# the summed medians, the data pipeline's share of a step, and batched vs
# per-image augmentation. Ratios < 1 mean tch is faster. Not a test.
#
# Usage: scripts/bench/cnn_step.sh [OUTDIR]
# Environment: ROUNDS (3), THREADS (1), DEVICE (cpu), MIXED (0|1), ARCHS (8),
#   LAYERS (6), BATCH (32), INPUT (3,32,32), STRIDES (0|1), STEPS (10),
#   WARMUP (3), BIN (a prebuilt bench_cnn_step; skips cargo), PYTHON,
#   PER_ARCH (1: alternate the sides per architecture; 0: per round).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$(mktemp -d /tmp/nasfleet-cnn-step.XXXXXX)}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-cpu}
MIXED=${MIXED:-0}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"

if [ -z "${BIN:-}" ]; then
  cd "$ROOT"
  if [ -z "${LIBTORCH:-}${LIBTORCH_USE_PYTORCH:-}" ]; then eval "$(scripts/setup.sh)"; fi
  PYTHON=${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}
  PYTHON=${PYTHON:-python3}
  cargo build --release -q -p nasfleet-torch --example bench_cnn_step >&2
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_cnn_step
fi

strides=()
[ "${STRIDES:-0}" = 1 ] && strides=(--strides)
"$BIN" prepare --out "$OUT" --archs "${ARCHS:-8}" --layers "${LAYERS:-6}" --batch "${BATCH:-32}" \
  --input "${INPUT:-3,32,32}" "${strides[@]}" 2>"$OUT/panel.txt"

mixed=()
[ "$MIXED" = 1 ] && mixed=(--mixed)
narchs=$("$PYTHON" -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["archs"]))' "$OUT/panel.json")
for r in $(seq 1 "$ROUNDS"); do
  if [ "${PER_ARCH:-1}" = 1 ]; then
    # Architecture by architecture, tch then PyTorch: the two measurements of
    # one architecture are seconds apart, so load from other users of a
    # shared machine hits both alike.
    for i in $(seq 0 $((narchs - 1))); do
      echo "round $r/$ROUNDS, arch $i: tch, pytorch" >&2
      "$BIN" time --dir "$OUT" --device "$DEVICE" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" \
        --only "$i" --no-data "${mixed[@]}" >"$OUT/tch.$r.$i.json"
      "$PYTHON" "$ROOT/scripts/bench/cnn_step_reference.py" "$OUT" --device "$DEVICE" --threads "$THREADS" \
        --steps "$STEPS" --warmup "$WARMUP" --only "$i" "${mixed[@]}" >"$OUT/torch.$r.$i.json" 2>"$OUT/torch.$r.$i.err"
    done
  else
    # The whole panel per process (a dedicated machine: fewer interpreter starts).
    echo "round $r/$ROUNDS: tch, pytorch" >&2
    "$BIN" time --dir "$OUT" --device "$DEVICE" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" \
      --no-data "${mixed[@]}" >"$OUT/tch.$r.all.json"
    "$PYTHON" "$ROOT/scripts/bench/cnn_step_reference.py" "$OUT" --device "$DEVICE" --threads "$THREADS" \
      --steps "$STEPS" --warmup "$WARMUP" "${mixed[@]}" >"$OUT/torch.$r.all.json" 2>"$OUT/torch.$r.all.err"
  fi
done
# The data pipeline, with every architecture's step (the shares need both).
"$BIN" time --dir "$OUT" --device "$DEVICE" --threads "$THREADS" --steps 2 --warmup 1 "${mixed[@]}" >"$OUT/data.json"

"$PYTHON" - "$OUT" "$ROUNDS" "$narchs" <<'EOF'
import glob, json, statistics, sys
out, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {side: [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{side}.*.json"))] for side in ("tch", "torch")}
def samples(side, i, key="step_ms"):
    # Every step time of architecture i, over all rounds (files hold one
    # architecture with PER_ARCH=1, the whole panel otherwise).
    return [t for d in runs[side] for a, ts in zip(d["archs"], d[key]) if a == i for t in ts]
tch_med = [statistics.median(samples("tch", i)) for i in range(n)]
pt_med = [statistics.median(samples("torch", i)) for i in range(n)]
ratios = [a / b for a, b in zip(tch_med, pt_med)]
# CPU time of the calling thread: what a step costs, without the time spent
# waiting for a core on a shared machine (CPU runs with one thread only).
cpu = None
try:
    tch_cpu = [statistics.median(samples("tch", i, "step_thread_cpu_ms")) for i in range(n)]
    pt_cpu = [statistics.median(samples("torch", i, "step_thread_cpu_ms")) for i in range(n)]
    cpu = {"tch_cpu_median_ms": [round(v, 3) for v in tch_cpu], "pytorch_cpu_median_ms": [round(v, 3) for v in pt_cpu],
           "cpu_ratio_per_arch": [round(a / b, 3) for a, b in zip(tch_cpu, pt_cpu)],
           "cpu_ratio_of_summed_medians": round(sum(tch_cpu) / sum(pt_cpu), 3)}
except (KeyError, statistics.StatisticsError, ZeroDivisionError):
    pass
data = json.load(open(f"{out}/data.json"))
flops = data["forward_flops_per_image"]
first = runs["tch"][0]
report = {
    "bench": "cnn_step", "device": first["device"], "threads": first["threads"],
    "mixed_precision": first["mixed_precision"], "batch": first["batch"], "input": first["input"],
    "archs": n, "rounds": rounds, "steps_per_round": len(first["step_ms"][0]), "samples_per_arch": len(samples("tch", 0)),
    "tch_median_ms": [round(v, 3) for v in tch_med],
    "pytorch_median_ms": [round(v, 3) for v in pt_med],
    "ratio_per_arch": [round(v, 3) for v in ratios],
    "ratio_of_summed_medians": round(sum(tch_med) / sum(pt_med), 3),
    "ratio_median": round(statistics.median(ratios), 3),
    # Training FLOPs ~ 3x the forward pass (backward = 2x forward).
    "achieved_tflops_tch": [round(3 * f * first["batch"] / (t / 1e3) / 1e12, 4) for f, t in zip(flops, tch_med)],
    "data_batched_ms": round(data["data_batched_ms"], 3),
    "data_per_image_loop_ms": round(data["data_per_image_loop_ms"], 3),
    "data_share_of_step_median": round(statistics.median([data["data_batched_ms"] / (data["data_batched_ms"] + s) for s in tch_med]), 4),
}
if cpu and first["device"] == "Cpu":
    report.update(cpu)
print(json.dumps(report))
EOF
