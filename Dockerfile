# One image for every vlmq role; docker-compose.yml picks the command.
# The CUDA build of torch carries its own CUDA libraries, so a slim base works
# with the NVIDIA container toolkit on GPU hosts.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app

RUN pip install torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY shared shared
COPY web web
COPY worker worker
COPY migrations migrations
COPY vlmq vlmq
RUN pip install '.[inference]'

RUN useradd --create-home vlmq && mkdir /data && chown vlmq /data
USER vlmq
ENV VLMQ_DATA_DIR=/data
EXPOSE 8000
CMD ["vlmq", "web", "--host", "0.0.0.0", "--port", "8000"]
