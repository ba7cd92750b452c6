# Two images from one file (docker-compose.yml picks the target):
#   web: slim Python, no torch. Runs the web server, migrations and the light worker
#        (webhooks + sweeper); about 250 MB instead of several GB.
#   gpu: CUDA runtime base, torch and the inference extra. Runs `vlmq worker gpu`.
# HF_HUB_OFFLINE is not set: VLMQ_MODEL may be a hub id. Hosts without hub access
# mount the weights (see the README's Deployment section) and may set it themselves.

FROM python:3.11-slim AS web
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared shared
COPY web web
COPY worker worker
COPY migrations migrations
COPY vlmq vlmq
# The base dependencies only: nothing here imports torch (tests/ops/test_deploy.py checks it).
RUN pip install . \
    && useradd --create-home vlmq && mkdir /data && chown vlmq /data
USER vlmq
ENV VLMQ_DATA_DIR=/data
EXPOSE 8000
CMD ["vlmq", "web", "--host", "0.0.0.0", "--port", "8000"]

# torch's wheels bring their own CUDA libraries; the CUDA base adds the driver-facing
# pieces (and NVIDIA_* variables) the container toolkit and bitsandbytes expect.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS gpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/venv
WORKDIR /app
RUN pip install torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY shared shared
COPY web web
COPY worker worker
COPY migrations migrations
COPY vlmq vlmq
RUN pip install '.[inference]' \
    && useradd --create-home vlmq && mkdir /data /models && chown vlmq /data /models
USER vlmq
ENV VLMQ_DATA_DIR=/data
CMD ["vlmq", "worker", "gpu"]
