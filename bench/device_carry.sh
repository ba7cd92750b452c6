#!/usr/bin/env bash
# Prepares what a GPU benchmark carries to the device machine (which has torch but no network):
#   .whl/           the wheels vlmq needs there beyond its torch image (Python 3.12, x86-64), bitsandbytes
#                   slimmed to its CUDA 13 and CPU libraries so the whole carry stays under 64 MiB;
#   .device-carry/  Debian's redis-server binary and the two libraries that image lacks.
# Then, with the device tool: carry [".whl", ".device-carry"] and run `bash bench/gpu_service_bench.sh`
# (or install .whl as that script does and run bench/gpu_batch_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  bitsandbytes==0.50.2 llguidance==1.9.1 transformers==5.23.0
  pydantic==2.14.3 pydantic-core==2.50.4 pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5
  annotated-types==0.8.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
  rpds-py==2026.9.1 attrs==26.1.0
  flask werkzeug itsdangerous blinker click celery kombu billiard vine click-didyoumean click-repl
  click-plugins prompt-toolkit wcwidth tzlocal tzdata python-dateutil redis sqlalchemy greenlet alembic mako
  gunicorn prometheus-client psutil requests urllib3 certifi idna charset-normalizer amqp
  flask-limiter limits deprecated wrapt ordered-set google-re2 phonenumbers openpyxl et-xmlfile
  rich markdown-it-py mdurl pygments jinja2 markupsafe
)
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "${WHEELS[@]}"
for wheel in .whl/bitsandbytes-*.whl; do
  zip -q -d "$wheel" 'bitsandbytes/libbitsandbytes_cuda11*' 'bitsandbytes/libbitsandbytes_cuda12*' \
    'bitsandbytes/libbitsandbytes_rocm*' 2>/dev/null || true
done
mkdir -p .device-carry/lib
cp -L "$(command -v redis-check-rdb || echo /usr/bin/redis-check-rdb)" .device-carry/
cp -L /lib/x86_64-linux-gnu/libjemalloc.so.2 /lib/x86_64-linux-gnu/liblzf.so.1 .device-carry/lib/
du -sh .whl .device-carry
