#!/usr/bin/env bash
# Builds the nasfleet binary for deployment: target/release/nasfleet, linked
# against libtorch from the torch==2.11.0 wheel (the set-up venv of
# scripts/setup.sh, or the Python environment named by LIBTORCH_USE_PYTORCH=1
# and PATH, as in deploy/Dockerfile.worker), with libtorch_cuda recorded as a
# needed library so that `--device cuda:N` works.
#
#   deploy/build-nasfleet.sh            # prints the binary's path last
#
# Why the extra link arguments: the binary calls into libtorch_cpu only, and
# the linker's --as-needed (rustc's default) drops libtorch_cuda, whose loading
# is what registers libtorch's CUDA backend; without it a CUDA machine reports
# no CUDA device (scripts/bench/gpu.sh works around the same thing with
# LD_PRELOAD). `cargo rustc` passes them to the final link of the binary only.
# A CPU-only torch (no libtorch_cuda.so) builds without them, with a warning.
#
# The rpath written into the binary points at the build machine's torch/lib;
# a machine that installs the same wheel elsewhere names its torch/lib with
# LD_LIBRARY_PATH (deploy/cloud-init/worker.yaml installs a wrapper for that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${LIBTORCH:-}${LIBTORCH_USE_PYTORCH:-}" ]; then
  eval "$(scripts/setup.sh)"
fi
profile=${PROFILE:-release}

if [ -n "${LIBTORCH:-}" ]; then
  torch_lib=$LIBTORCH/lib
else
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
fi

link=()
if [ -f "$torch_lib/libtorch_cuda.so" ]; then
  link=(-C "link-arg=-Wl,--no-as-needed" -C link-arg=-ltorch_cuda)
else
  echo "build-nasfleet: no libtorch_cuda.so in $torch_lib: building a CPU-only binary" >&2
fi

cargo rustc --locked --profile "$profile" -p nasfleet --bin nasfleet -- "${link[@]}"

dir=$profile
[ "$profile" = dev ] && dir=debug
bin=${CARGO_TARGET_DIR:-target}/$dir/nasfleet
if [ ${#link[@]} -gt 0 ] && ! readelf -d "$bin" | grep -q 'libtorch_cuda'; then
  echo "build-nasfleet: $bin does not need libtorch_cuda.so: CUDA would not work" >&2
  exit 1
fi
"$bin" --version >&2
echo "$bin"
