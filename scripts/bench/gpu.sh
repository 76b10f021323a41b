#!/usr/bin/env bash
# GPU measurements of CNN children (perf.md §6), for the project's H200 machine.
#
#   scripts/bench/gpu.sh bundle        # here: build and pack target/gpu-bundle
#   scripts/bench/gpu.sh run [OUTDIR]  # there: every measurement, results in OUTDIR
#
# The GPU machine has no Rust toolchain and no internet, and torch 2.11.0 at
# /opt/torch/.venv. `bundle` builds the release benchmark binaries against
# PyPI's torch 2.11.0 and packs them with Fashion-MNIST (~30 MB) into
# target/gpu-bundle (< 64 MiB; carry it along with the working tree). `run`
# points the binaries at that torch's libraries and measures, writing every
# result to OUTDIR (default $OUT, else /tmp/nasfleet-gpu):
#   1. step_{fp32,bf16}.json   — one training step, tch vs PyTorch eager, for a
#      fixed panel of 8 sampled 6-layer architectures at 3x32x32, batch 128
#      (synthetic pixels: timing only), with the data pipeline's share of a
#      step, batched vs per-image augmentation and achieved TFLOP/s;
#   2. epochs_{fp32,bf16}.jsonl — the same panel trained 3 epochs on
#      Fashion-MNIST (20,000 / 5,000, 28x28): seconds per epoch and validation
#      accuracy at fp32 and with mixed precision (bf16, fp32 weights and BN);
#   3. workers_{1,2,4}/ — children per GPU-hour with 1, 2 and 4 worker
#      processes sharing the GPU (8 children in total each time);
#   4. summary.jsonl — one line per measurement.
# Expected to take 5-8 minutes on the H200 (estimated, not yet measured): run
# it with a 10-minute limit and shrink EPOCHS / CHILDREN if it runs out.
# Environment: WORKERS ("1 2 4"), CHILDREN (8), EPOCHS (3), STEP_ROUNDS (2),
#   DEVICE (cuda:0), TORCH_PY (/opt/torch/.venv/bin/python), BUNDLE,
#   GPU_CONFIG (scripts/bench/gpu-fashion.toml: the children's recipe),
#   STEP_BATCH (128), STEP_ARCHS (8), STEP_LAYERS (6), STEP_STEPS (20).
# A dry run of the script's plumbing on a CPU machine:
#   DEVICE=cpu TORCH_PY=$VIRTUAL_ENV/bin/python GPU_CONFIG=config/fashion-mnist-demo.toml \
#   EPOCHS=1 CHILDREN=2 WORKERS="1 2" STEP_ROUNDS=1 STEP_BATCH=4 STEP_ARCHS=2 STEP_LAYERS=3 \
#   STEP_STEPS=2 scripts/bench/gpu.sh run /tmp/gpu-dry
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE=${BUNDLE:-$ROOT/target/gpu-bundle}

bundle() {
  cd "$ROOT"
  if [ -z "${LIBTORCH:-}${LIBTORCH_USE_PYTORCH:-}" ]; then eval "$(scripts/setup.sh)"; fi
  cargo build --release -q -p nasfleet-torch --example bench_cnn_step --example cnn_children
  local target=${CARGO_TARGET_DIR:-$ROOT/target}
  local fm=${NASFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nasfleet}/fashion-mnist
  if [ ! -f "$fm/train-images-idx3-ubyte.gz" ]; then
    echo "gpu.sh: Fashion-MNIST is not in $fm; run the cnn_fashion test once (it fetches it)" >&2
    exit 1
  fi
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/bin" "$BUNDLE/data/fashion-mnist"
  cp "$target/release/examples/bench_cnn_step" "$target/release/examples/cnn_children" "$BUNDLE/bin/"
  strip "$BUNDLE/bin/"* 2>/dev/null || true
  cp "$fm"/*.gz "$BUNDLE/data/fashion-mnist/"
  local mib
  mib=$(du -sm "$BUNDLE" | cut -f1)
  echo "gpu.sh: bundle $BUNDLE is $mib MiB" >&2
  [ "$mib" -lt 64 ] || { echo "gpu.sh: bundle over 64 MiB" >&2; exit 1; }
}

run() {
  local out=${1:-${OUT:-/tmp/nasfleet-gpu}}
  local py=${TORCH_PY:-/opt/torch/.venv/bin/python}
  local device=${DEVICE:-cuda:0}
  mkdir -p "$out"
  local torch_lib
  torch_lib=$("$py" -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
  export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # The binaries reference libtorch_cpu only: the linker's --as-needed drops
  # libtorch_cuda, whose load is what registers the CUDA backend. Preload it.
  if [ -f "$torch_lib/libtorch_cuda.so" ]; then
    export LD_PRELOAD=$torch_lib/libtorch_cuda.so${LD_PRELOAD:+:$LD_PRELOAD}
  fi
  local bin=$BUNDLE/bin data=$BUNDLE/data
  local config=${GPU_CONFIG:-$ROOT/scripts/bench/gpu-fashion.toml}
  (nvidia-smi || true) >"$out/nvidia-smi.txt" 2>&1
  "$py" -c 'import torch,json;print(json.dumps({"torch":torch.__version__,"cuda":torch.version.cuda,"gpu":torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))' >"$out/env.json" 2>&1 || true
  local summary=$out/summary.jsonl
  : >"$summary"
  local t0=$SECONDS

  # 1. Training step, tch vs PyTorch eager, fp32 and bf16.
  for prec in fp32 bf16; do
    local mixed=0
    [ "$prec" = bf16 ] && mixed=1
    echo "gpu.sh: step benchmark $prec ($((SECONDS - t0)) s)" >&2
    BIN=$bin/bench_cnn_step PYTHON=$py DEVICE=$device MIXED=$mixed BATCH=${STEP_BATCH:-128} \
      ARCHS=${STEP_ARCHS:-8} LAYERS=${STEP_LAYERS:-6} ROUNDS=${STEP_ROUNDS:-2} STEPS=${STEP_STEPS:-20} WARMUP=5 THREADS=4 \
      PER_ARCH=0 "$ROOT/scripts/bench/cnn_step.sh" "$out/step_$prec" >"$out/step_$prec.json" \
      2>"$out/step_$prec.err" || echo "gpu.sh: step benchmark $prec failed (see step_$prec.err)" >&2
    cat "$out/step_$prec.json" >>"$summary" || true
  done

  # 2. Seconds per epoch and accuracy for the panel, fp32 vs mixed precision.
  local panel=$out/step_fp32/panel.json
  for prec in fp32 bf16; do
    local flag=()
    [ "$prec" = bf16 ] && flag=(--mixed)
    echo "gpu.sh: panel epochs $prec ($((SECONDS - t0)) s)" >&2
    "$bin/cnn_children" --config "$config" --panel "$panel" --device "$device" \
      --data-dir "$data" --threads 4 --epochs "${EPOCHS:-3}" "${flag[@]}" >"$out/epochs_$prec.jsonl" \
      2>"$out/epochs_$prec.err" || echo "gpu.sh: epochs $prec failed" >&2
    tail -n 1 "$out/epochs_$prec.jsonl" | sed "s/^{/{\"measure\":\"panel_epochs_$prec\",/" >>"$summary" || true
  done

  # 3. Children per GPU-hour with W worker processes sharing the GPU.
  local total=${CHILDREN:-8}
  for w in ${WORKERS:-1 2 4}; do
    echo "gpu.sh: $w worker(s) ($((SECONDS - t0)) s)" >&2
    mkdir -p "$out/workers_$w"
    local per=$(((total + w - 1) / w))
    local start=$SECONDS pids=()
    for i in $(seq 1 "$w"); do
      "$bin/cnn_children" --config "$config" --children "$per" --seed "$((i * 1000))" \
        --device "$device" --data-dir "$data" --threads 2 --mixed --epochs "${EPOCHS:-3}" \
        >"$out/workers_$w/worker_$i.jsonl" 2>"$out/workers_$w/worker_$i.err" &
      pids+=($!)
    done
    local ok=1
    for p in "${pids[@]}"; do wait "$p" || ok=0; done
    local wall=$((SECONDS - start))
    "$py" - "$out/workers_$w" "$w" "$wall" "$ok" >>"$summary" <<'EOF'
import glob, json, sys
d, w, wall, ok = sys.argv[1], int(sys.argv[2]), max(int(sys.argv[3]), 1), sys.argv[4] == "1"
lines = [json.loads(l) for f in glob.glob(f"{d}/worker_*.jsonl") for l in open(f) if l.strip()]
children = [l for l in lines if "child" in l and "error" not in l]
print(json.dumps({"measure": "workers", "workers": w, "all_ok": ok, "children": len(children),
                  "wall_seconds": wall, "children_per_gpu_hour": round(len(children) * 3600 / wall, 1),
                  "best_valid_accuracy": max([c["best_valid_accuracy"] for c in children], default=None),
                  "dataset": "fashion-mnist", "mixed_precision": True}))
EOF
  done
  echo "gpu.sh: done in $((SECONDS - t0)) s; results in $out" >&2
  cat "$summary"
}

case "${1:-}" in
  bundle) bundle ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/bench/gpu.sh bundle | run [OUTDIR]" >&2; exit 2 ;;
esac
