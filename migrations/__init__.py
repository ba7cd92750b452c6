"""Alembic migrations; a package so `shared.migrate` can find it when installed."""
