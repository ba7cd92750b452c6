#!/usr/bin/env bash
# The engine's GPU record in one device call (carry [".whl"] after `bash bench/device_carry.sh`):
# the named bench scripts in turn, each writing its JSON under $OUT, their output in $OUT/suite.log.
#   bash bench/gpu_engine_suite.sh "gpu_decode_profile.py --quantization bf16" "gpu_batch_bench.py --batches 64,128"
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/vlmq-engine-suite} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for run in "$@"; do
  read -r script args <<<"$run"
  echo "== $script $args"
  # shellcheck disable=SC2086
  python3 "bench/$script" $args 2>&1 | grep -v "Loading weights" | tee -a "$OUT/suite.log"
done
