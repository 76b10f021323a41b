#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up (libtorch, redis-server
# check), clippy with warnings as errors (the workspace lints of Cargo.toml),
# then every crate's tests. Idempotent; fast when set-up is done.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
cargo test --workspace "$@"
