"""`GET /v1/models`: what the live GPU workers serve, read by the official OpenAI client."""

from __future__ import annotations

import openai
import pytest
import redis

from shared.celery_app import GPU_QUEUE, WEBHOOK_QUEUE
from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.presence import announce


def test_lists_each_model_of_the_live_gpu_workers_once(openai_client: openai.OpenAI, broker: redis.Redis) -> None:
    assert openai_client.models.list().data == []
    announce(broker, "a:1", {"queues": [GPU_QUEUE], "model": "zai-org/GLM-4.6V-Flash", "loaded_at": 200}, ttl_s=30)
    announce(broker, "b:1", {"queues": [GPU_QUEUE], "model": "zai-org/GLM-4.6V-Flash", "loaded_at": 100}, ttl_s=30)
    announce(broker, "c:1", {"queues": [GPU_QUEUE], "model": "/tmp/tiny", "placeholder": True}, ttl_s=30)
    announce(broker, "d:1", {"queues": [WEBHOOK_QUEUE]}, ttl_s=30)
    models = openai_client.models.list().data
    assert [(m.id, m.created, m.owned_by) for m in models] == [
        (PLACEHOLDER_MODEL_NAME, 0, "vlmq"),
        ("zai-org/GLM-4.6V-Flash", 100, "vlmq"),
    ]
    assert openai_client.models.retrieve("zai-org/GLM-4.6V-Flash").id == "zai-org/GLM-4.6V-Flash"


def test_an_unknown_model_is_404(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.models.retrieve("gpt-4o")
    assert "GET /v1/models lists them" in missing.value.body["message"]
