"""`vlmq keys create|list|revoke|rotate`: API keys straight in the database, audited as `cli`."""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.table import Table

from shared.audit import CLI_ACTOR
from shared.auth import KeyNotLive, list_api_keys
from shared.clock import utcnow
from shared.db import make_engine, make_session_factory
from shared.key_actions import create_key, revoke_key, rotate_key
from shared.key_schemas import MAX_EXPIRES_IN_S, expiry
from shared.key_view import key_view
from shared.settings import Settings

DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> int:
    """`90d`, `12h`, `30m`, `45s` or plain seconds; a `ValueError` names the accepted forms."""
    match = DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write e.g. 90d, 12h, 30m or 3600 (seconds)")
    seconds = int(match[1]) * UNIT_S[match[2]]
    if seconds > MAX_EXPIRES_IN_S:
        raise ValueError(f"{text!r} is longer than 10 years")
    return seconds


def run_keys_command(
    settings: Settings,
    command: str,
    tenant: str | None = None,
    name: str | None = None,
    key_id: str | None = None,
    expires_in: str | None = None,
    grace: str | None = None,
) -> int:
    """Run one `vlmq keys` subcommand; a clear message and exit status 2 for a bad argument or key."""
    sessions = make_session_factory(make_engine(settings.sqlalchemy_url))
    now = utcnow()
    try:
        expires_at = expiry(now, None if expires_in is None else duration_s(expires_in))
        with sessions.begin() as session:
            if command == "create":
                print(create_key(session, CLI_ACTOR, str(tenant), now, name, expires_at).secret)
            elif command == "list":
                _print_keys([key_view(row, now).model_dump() for row in list_api_keys(session, tenant)])
            elif command == "revoke":
                print(f"revoked {revoke_key(session, CLI_ACTOR, str(key_id), now).id}", file=sys.stderr)
            else:
                grace_s = 0 if grace is None else duration_s(grace)
                issued = rotate_key(session, CLI_ACTOR, str(key_id), now, grace_s, expires_at)
                print(issued.secret)
                print(f"new key {issued.row.id}; {key_id} is refused after {grace_s} s", file=sys.stderr)
    except (LookupError, KeyNotLive, ValueError) as exc:
        print(f"vlmq: {exc}", file=sys.stderr)
        return 2
    return 0


def _print_keys(keys: list[dict[str, str | None]]) -> None:
    columns = ("id", "tenant_id", "prefix", "status", "created_at", "expires_at", "revoked_at", "last_used_at")
    table = Table(*columns, title=f"{len(keys)} keys")
    for key in keys:
        table.add_row(*(key[column] or "" for column in columns))
    # Wide enough for ids and times when the output is a pipe (rich assumes 80 columns there).
    Console(width=None if Console().is_terminal else 200).print(table)
