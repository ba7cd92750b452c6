"""The Flask app factory: the only place a web app is assembled."""

from __future__ import annotations

import redis
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from shared.celery_app import make_celery
from shared.db import make_engine, make_session_factory
from shared.settings import Settings
from web import health, metrics, openapi, pages
from web.api import (
    admin_keys,
    audit,
    batch_evaluation,
    batches,
    chat,
    deliveries,
    feedback,
    job_actions,
    jobs,
    webhook_settings,
)
from web.api.batch_variants import register_batch_variant
from web.api.waiting import WaitSlots
from web.app_state import AppState
from web.errors import register_error_handlers
from web.host_check import register_host_check
from web.json_provider import SafeJSONProvider
from web.openai import files, models
from web.openai.batches import OPENAI_BATCHES
from web.queue_time import register_queue_shedding
from web.rate_limits import init_rate_limits
from web.request_guard import register_request_guard
from web.request_ids import register_request_ids
from web.security_headers import register_security_headers

# Base64 in a JSON body is 4/3 the image size; leave room for the other fields.
# `POST /v1/batches` raises its own limit to VLMQ_MAX_BATCH_BYTES (web/api/batch_input.py).
_BODY_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (read from env and config file when omitted)."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_image_bytes * 4 // 3 + _BODY_OVERHEAD
    app.json = SafeJSONProvider(app)
    engine = make_engine(settings.sqlalchemy_url)
    app.extensions["vlmq"] = AppState(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        celery=make_celery(settings),
        redis=redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5),
        wait_slots=WaitSlots(settings.max_waiting_requests),
    )
    if settings.trusted_proxies:  # the client's own address and scheme, as the proxies in front saw them
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    register_error_handlers(app)
    register_request_ids(app)
    register_host_check(app, settings)
    register_queue_shedding(app)
    register_request_guard(app)
    register_security_headers(app)
    init_rate_limits(app, settings)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(deliveries.bp)
    app.register_blueprint(feedback.bp)
    app.register_blueprint(job_actions.bp)
    app.register_blueprint(batches.bp)
    register_batch_variant(app, OPENAI_BATCHES)
    app.register_blueprint(batch_evaluation.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(webhook_settings.bp)
    app.register_blueprint(audit.bp)
    if settings.admin_key is not None:  # without it the admin API does not exist: 404
        app.register_blueprint(admin_keys.bp)
    app.register_blueprint(pages.bp)
    return app
