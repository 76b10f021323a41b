#!/usr/bin/env bash
# The README's main command: a real RL search over the paper's CNN space on
# Fashion-MNIST, controller and two workers in one process (the embedded
# default, no Redis). Does its own set-up (libtorch, the dataset) and is
# idempotent; extra arguments go to `nasfleet local` (e.g. --workers 1).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh)"
cargo build --release -p nasfleet
target/release/nasfleet data fetch fashion-mnist
exec target/release/nasfleet local --config config/fashion-mnist-demo.toml --workers 2 "$@"
