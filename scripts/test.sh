#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up (libtorch, redis-server
# check), clippy with warnings as errors (the workspace lints of Cargo.toml),
# then every crate's tests. Idempotent; fast when set-up is done.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
cargo test --workspace "$@"
# The dashboard's live-fleet browser test stalls Chromium when it runs beside
# the other browser tests (not yet understood), so it is #[ignore]d there and
# run here on its own; the timeout turns a hang into a failure.
timeout 600 cargo test -p nasfleet --test nasfleet -- --ignored --exact \
  dashboard::a_live_fleet_over_redis_shows_workers_and_new_children_without_a_reload
