#!/usr/bin/env bash
# Language-model child training step: a sampled cell in tch vs the same cell
# in PyTorch eager, and vs tch's built-in LSTM of equal hidden size.
#
#   scripts/bench/lm_step.sh [--cell CELL.json] [--rounds 3] [--device cpu|cuda:0]
#                            [-- extra sizes: --hidden 200 --batch 20 --bptt 35 --vocab 10000 --reps 20]
#
# Without --cell the paper's NAS cell is used (the tch example prints its
# JSON). Both sides time warm-up + repeated steps (forward over a BPTT
# segment, cross entropy, backward, clip 5, SGD) and report their median; the
# two programs alternate for --rounds rounds in this one run, and the ratios
# are of the medians over rounds. Synthetic token ids (the step's cost does
# not depend on the text). Prints one JSON line on stdout.
#
# On the CPU both sides use one intra-op thread (OMP_NUM_THREADS=1), as the
# trainer does (see LmTrainer::with_cpu_threads).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(scripts/setup.sh)"

cell=""
rounds=3
device=cpu
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cell) cell=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "lm_step.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build --release --quiet -p nasfleet-torch --example bench_lm_step
bin=target/release/examples/bench_lm_step
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$cell" ]; then
  cell=$tmp/nascell.json
  "$bin" --print-cell > "$cell"
fi

export OMP_NUM_THREADS=1
for r in $(seq "$rounds"); do
  "$bin" --cell "$cell" --device "$device" "${extra[@]}" >> "$tmp/tch.jsonl"
  python3 scripts/bench/lm_step_reference.py "$cell" --device "$device" "${extra[@]}" 2>/dev/null >> "$tmp/torch.jsonl"
done

python3 - "$tmp/tch.jsonl" "$tmp/torch.jsonl" <<'EOF'
import json, statistics, sys
tch = [json.loads(l) for l in open(sys.argv[1])]
ref = [json.loads(l) for l in open(sys.argv[2])]
med = lambda rows, k: statistics.median(r[k] for r in rows)
t_cell, t_lstm, p_cell, p_lstm = med(tch, "cell_step_ms"), med(tch, "lstm_step_ms"), med(ref, "cell_step_ms"), med(ref, "lstm_step_ms")
print(json.dumps({
    "bench": "lm_step", "device": tch[0]["device"], "rounds": len(tch),
    "hidden": tch[0]["hidden"], "batch": tch[0]["batch"], "bptt": tch[0]["bptt"], "vocab": tch[0]["vocab"],
    "base": tch[0]["base"], "params": tch[0]["params"],
    "tch_cell_ms": t_cell, "pytorch_cell_ms": p_cell, "tch_lstm_ms": t_lstm, "pytorch_lstm_ms": p_lstm,
    "cell_tch_over_pytorch": round(t_cell / p_cell, 3),
    "cell_over_lstm_tch": round(t_cell / t_lstm, 3),
    "lstm_tch_over_pytorch": round(t_lstm / p_lstm, 3),
}))
EOF
