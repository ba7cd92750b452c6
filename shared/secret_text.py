"""Text about settings that is safe to print: no passwords, no secret values.

A pydantic error quotes its input (`input_value={... 'database_url': 'postgresql://u:pw@...'}`),
and a database URL carries its password; start-up messages and errors go to terminals
and logs, so they are built from these instead.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def masked_url(url: str) -> str:
    """`url` with its password replaced by `***` (redis and database URLs alike)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def settings_error_text(exc: ValidationError) -> str:
    """One line per problem, naming the setting and the rule, never the value given."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"VLMQ_{where.upper()}: {message}" if where else message)
    return "; ".join(lines)
