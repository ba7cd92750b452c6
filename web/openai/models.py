"""`GET /v1/models`: the models the live GPU workers serve, as OpenAI lists them.

Many clients (LangChain, Open WebUI, LiteLLM) call this first. The list comes from
the workers' presence records in Redis, so it shows what can answer right now.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from shared.celery_app import GPU_QUEUE
from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.presence import live_workers
from web.api.openai_objects import ModelList, ModelObject, dump
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError

bp = Blueprint("models_api", __name__)


def served_models() -> list[ModelObject]:
    """One entry per distinct model among live GPU workers, by the name jobs record."""
    found: dict[str, ModelObject] = {}
    for info in live_workers(app_state().redis):
        if GPU_QUEUE not in info.get("queues", []) or "model" not in info:
            continue
        model_id = PLACEHOLDER_MODEL_NAME if info.get("placeholder") else info["model"]
        created = int(info.get("loaded_at", 0))
        if model_id not in found or created < found[model_id].created:
            found[model_id] = ModelObject(id=model_id, created=created)
    return sorted(found.values(), key=lambda model: model.id)


@bp.get("/v1/models")
def list_models() -> Response:
    current_tenant()
    return jsonify(dump(ModelList(data=served_models())))


@bp.get("/v1/models/<path:model_id>")
def get_model(model_id: str) -> Response:
    current_tenant()
    for model in served_models():
        if model.id == model_id:
            return jsonify(dump(model))
    raise ApiError("model_not_found", f"no live worker serves model {model_id!r}; GET /v1/models lists them", 404)
