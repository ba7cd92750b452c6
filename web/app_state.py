"""Per-app resources (settings, DB sessions, broker), built once by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from web.api.waiting import WaitSlots


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    redis: redis.Redis
    wait_slots: WaitSlots


def app_state() -> AppState:
    """The state of the app handling the current request."""
    return current_app.extensions["vlmq"]
