#!/usr/bin/env bash
# Runs bench/gpu_service_bench.py on the GPU machine (device tool, carry [".whl", ".device-carry"]):
# installs the carried wheels into /tmp/site, puts the carried Debian redis-server (with its shared
# libraries, for Redis alone) on PATH, and tees the log into $OUT. Arguments go to the Python script.
# CPU dry run here: VLMQ_BENCH_NO_WHEELS=1 PYTHON=.venv/bin/python bash bench/gpu_service_bench.sh --tiny
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export OUT=${OUT:-/tmp/vlmq-service-bench/out}
mkdir -p "$OUT"
if [[ -z ${VLMQ_BENCH_NO_WHEELS:-} ]]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
carry=$PWD/.device-carry
mkdir -p /tmp/vlmq-bench-bin
printf '#!/usr/bin/env bash\nLD_LIBRARY_PATH=%s/lib exec -a redis-server %s/redis-check-rdb "$@"\n' "$carry" "$carry" \
  >/tmp/vlmq-bench-bin/redis-server
chmod +x /tmp/vlmq-bench-bin/redis-server
export PATH=/tmp/vlmq-bench-bin:$PATH PYTHONUNBUFFERED=1
redis-server --version
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" bench/gpu_service_bench.py "$@" 2>&1 | tee "$OUT/gpu_service_bench.log"
