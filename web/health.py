"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shared.celery_app import GPU_QUEUE
from shared.down_reports import GPU_WORKER, down_report
from shared.presence import live_workers
from web.app_state import app_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing about its dependencies."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the database and broker answer and a GPU worker is alive; with none, says why when the process
    manager reported it (`shared.down_reports`)."""
    state = app_state()
    checks: dict[str, dict[str, object]] = {}
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except SQLAlchemyError as exc:
        checks["database"] = {"ok": False, "error": str(exc.__class__.__name__)}
    try:
        state.redis.ping()
        workers = [w for w in live_workers(state.redis) if GPU_QUEUE in w.get("queues", [])]
        checks["broker"] = {"ok": True}
        checks["gpu_workers"] = {
            "ok": bool(workers),
            "count": len(workers),
            "models": sorted({w.get("model", "?") for w in workers}),
        }
        if not workers and (report := down_report(state.redis, GPU_WORKER)) is not None:
            checks["gpu_workers"]["error"] = report
    except RedisError as exc:
        checks["broker"] = {"ok": False, "error": str(exc)}
        checks["gpu_workers"] = {"ok": False, "count": 0}
    ready = all(check["ok"] for check in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503
