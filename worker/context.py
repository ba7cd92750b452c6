"""Resources one worker process holds: settings, DB sessions, broker, the model.

Built after fork (`worker_process_init`) so no DB connection, Redis socket or CUDA
context is ever shared between processes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, make_session_factory
from shared.settings import Settings
from worker.cancel_listener import RunningJobs
from worker.inference.engine_contract import Engine


@dataclass
class WorkerContext:
    settings: Settings
    sessions: sessionmaker[Session]
    celery: Celery
    redis: redis.Redis
    name: str
    engine: Engine | None = None
    running: RunningJobs = field(default_factory=RunningJobs)  # where pushed cancels find their job


_current: WorkerContext | None = None


def worker_name(pid: int | None = None) -> str:
    """Unique per process: `host:pid` (this process's, or a child's that its supervisor names)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def build_context(settings: Settings, celery: Celery) -> WorkerContext:
    """Fresh per-process resources (engine loading is separate and GPU-only)."""
    return WorkerContext(
        settings=settings,
        sessions=make_session_factory(make_engine(settings.sqlalchemy_url)),
        celery=celery,
        redis=redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10),
        name=worker_name(),
    )


def set_context(context: WorkerContext) -> None:
    global _current
    _current = context


def get_context() -> WorkerContext:
    """The process's context; tasks fail loudly if the worker was not set up."""
    if _current is None:
        raise RuntimeError("worker context not initialised: start workers with `vlmq worker`")
    return _current
