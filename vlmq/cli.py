"""Entry point of the `vlmq` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.log_format import configure_logging
from shared.secret_text import settings_error_text
from shared.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmq", description="Vision-language jobs on product photos.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole service here (SQLite, own Redis, web, one worker)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)

    web = commands.add_parser("web", help="run the web server (gunicorn)")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8000)
    web.add_argument("--workers", type=int, default=2)
    web.add_argument("--threads", type=int, default=16, help="threads per process; Prefer: wait holds one each")
    web.add_argument("--fd", type=int, help="serve on this inherited listening socket instead (`vlmq up` passes it)")

    worker = commands.add_parser("worker", help="run a Celery worker")
    worker.add_argument("role", choices=["gpu", "webhooks"])
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--beat", action="store_true", help="also run the periodic sweeper (webhooks role)")

    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])

    model = commands.add_parser("model", help="model tools")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    tiny = model_commands.add_parser("build-tiny", help="build the tiny random-weight checkpoint offline")
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--family", choices=["glm4v", "qwen2_vl"], default="glm4v")

    submit = commands.add_parser("submit", help="submit an image and print the job as JSON")
    submit.add_argument("image", type=Path)
    _add_request_arguments(submit)
    submit.add_argument("--wait", action="store_true", help="follow the job, with progress, until it ends")
    submit.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default 60)")
    _add_server_arguments(submit)

    batch = commands.add_parser("batch", help="run a catalogue of photos")
    batch_commands = batch.add_subparsers(dest="batch_command", required=True)
    run = batch_commands.add_parser("run", help="send a folder (or CSV) of photos, wait, write the results")
    run.add_argument("source", type=Path, help="a folder of photos, or a CSV with path or url, sku, metadata")
    _add_request_arguments(run)
    run.add_argument("--out", type=Path, default=Path("results.csv"), help=".csv, .jsonl or .xlsx")
    run.add_argument("--chunk-size", type=int, default=100, help="photos per batch request (default 100)")
    run.add_argument("--timeout", type=float, help="give up waiting after this many seconds (default: never)")
    _add_server_arguments(run)

    evaluate = commands.add_parser("eval", help="measure attributes results against a person's labels")
    evaluate.add_argument("labels", type=Path, help="labels: .csv or .xlsx with sku or name, category, color, ...")
    evaluate.add_argument("--results", type=Path, required=True, help="a results file of `vlmq batch run`")
    evaluate.add_argument("--report", type=Path, help="also write an HTML report with charts here")

    jobs = commands.add_parser("jobs", help="the newest jobs as a table")
    jobs.add_argument("--status")
    jobs.add_argument("--task")
    jobs.add_argument("--search", help="text in the file name or metadata, e.g. a SKU")
    jobs.add_argument("--limit", type=int, default=20)
    _add_server_arguments(jobs)
    batches = commands.add_parser("batches", help="the newest batches as a table")
    batches.add_argument("--limit", type=int, default=20)
    _add_server_arguments(batches)

    keys = commands.add_parser("keys", help="API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create an API key for a tenant (created if new)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name")
    create.add_argument("--expires-in", help="refuse the key after this long: 90d, 12h, 30m or seconds")
    listing = keys_commands.add_parser("list", help="every key (never in clear) with its status and last use")
    listing.add_argument("--tenant")
    revoke = keys_commands.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")
    rotate = keys_commands.add_parser("rotate", help="a new key for the same tenant; the old one is revoked")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", help="keep the old key working this long (e.g. 1h; default: revoke at once)")
    rotate.add_argument("--expires-in", help="the new key's lifetime: 90d, 12h, 30m or seconds")

    webhooks = commands.add_parser("webhooks", help="webhook secrets, endpoints and a local test receiver")
    webhooks_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listen = webhooks_commands.add_parser("listen", help="receive, verify and print deliveries (local testing)")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=9000)
    listen.add_argument("--secret", help="whsec_... to verify with (default: the tenant's secret from the database)")
    listen.add_argument("--tenant", default="default")
    secret = webhooks_commands.add_parser("secret", help="print a tenant's signing secret (made on first use)")
    secret.add_argument("--tenant", default="default")
    secret.add_argument("--rotate", action="store_true", help="new secret; the old one keeps signing for a while")
    endpoint = webhooks_commands.add_parser("endpoint", help="set a tenant's default webhook URL")
    endpoint.add_argument("--tenant", default="default")
    endpoint_target = endpoint.add_mutually_exclusive_group(required=True)
    endpoint_target.add_argument("--url")
    endpoint_target.add_argument("--clear", action="store_true")
    return parser


def _add_request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="describe, ocr, attributes, copy or ask")
    parser.add_argument("--prompt", help="the question for 'ask', or an instruction")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a task parameter, e.g. channel=title"
    )
    parser.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="kept with each job")


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("VLMQ_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("VLMQ_API_KEY"))


CLIENT_COMMANDS = ("submit", "batch", "jobs", "batches", "eval")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("text")
    if args.command in CLIENT_COMMANDS:
        from vlmq.client import CliError

        try:
            return _run_client(args)
        except CliError as exc:
            print(f"vlmq: {exc.message}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(
                "vlmq: interrupted; what was sent keeps running (run the same command again to resume)", file=sys.stderr
            )
            return 130
    if args.command == "model":
        from worker.inference.placeholder.checkpoint import build_tiny_checkpoint

        print(build_tiny_checkpoint(args.directory, family=args.family))
        return 0
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"vlmq: invalid settings: {settings_error_text(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:  # the config file is missing
        print(f"vlmq: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    return _run_with_settings(args, settings)


def _run_client(args: argparse.Namespace) -> int:
    """The commands of a vlmq user (most talk to a running vlmq over HTTP); they need no settings of their own."""
    if args.command == "eval":
        from vlmq.eval_report import run_eval

        return run_eval(args.labels, args.results, args.report)
    from vlmq.client import ApiClient

    client = ApiClient(args.url, args.api_key)
    if args.command == "jobs":
        from vlmq.listings import list_jobs

        return list_jobs(client, args.status, args.task, args.search, args.limit)
    if args.command == "batches":
        from vlmq.listings import list_batches

        return list_batches(client, args.limit)
    params, metadata = _key_values("--param", args.param, as_json=True), _key_values("--metadata", args.metadata)
    if args.command == "submit":
        from vlmq.submit import submit

        return submit(client, args.image, args.task, args.prompt, params, metadata, args.timeout if args.wait else 0)
    from vlmq.batch_run import RunRequest, batch_run

    request = RunRequest(task=args.task, prompt=args.prompt, params=params, metadata=metadata)
    return batch_run(client, args.source, request, args.out, args.chunk_size, args.timeout)


def _key_values(option: str, pairs: list[str], as_json: bool = False) -> dict[str, Any]:
    """`KEY=VALUE` pairs; with `as_json`, a value that reads as JSON (a number, true, an object) is taken as such."""
    from vlmq.client import CliError

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option} takes KEY=VALUE, got {pair!r}")
        values[key.strip()] = raw
        if as_json:
            with contextlib.suppress(json.JSONDecodeError):
                values[key.strip()] = json.loads(raw)
    return values


def _run_with_settings(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from vlmq.up import up

        return up(settings, args.host, args.port)
    if args.command == "web":
        from vlmq.web_server import serve

        return serve(settings, args.host, args.port, args.workers, args.threads, args.fd)
    if args.command == "worker":
        from worker.app import ModelLoadError, run_worker

        try:
            run_worker(settings, args.role, concurrency=args.concurrency, beat=args.beat)
        except ModelLoadError as exc:
            print(f"vlmq: {exc}", file=sys.stderr)
            return 3
        return 0
    if args.command == "db":
        from shared.migrate import upgrade_to_head

        upgrade_to_head(settings.sqlalchemy_url)
        print("vlmq: database schema is up to date")
        return 0
    from vlmq.service_data import missing_database

    if _reads_the_database(args) and (problem := missing_database(settings)) is not None:
        print(f"vlmq: {problem}", file=sys.stderr)
        return 2
    if args.command == "keys":
        from vlmq.keys_admin import run_keys_command

        return run_keys_command(
            settings,
            args.keys_command,
            tenant=getattr(args, "tenant", None),
            name=getattr(args, "name", None),
            key_id=getattr(args, "key_id", None),
            expires_in=getattr(args, "expires_in", None),
            grace=getattr(args, "grace", None),
        )
    if args.command == "webhooks":
        return _webhooks(args, settings)
    raise AssertionError(f"unhandled command {args.command}")


def _reads_the_database(args: argparse.Namespace) -> bool:
    """The admin commands, which work on the database `vlmq up` made (`db upgrade` and the servers create it)."""
    if args.command == "webhooks":
        return not (args.webhooks_command == "listen" and args.secret)
    return args.command == "keys"


def _webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from shared.ssrf import UnsafeUrl
    from vlmq.webhooks_admin import set_endpoint, tenant_secret

    try:
        if args.webhooks_command == "listen":
            from vlmq.webhooks_listen import listen

            return listen(args.host, args.port, args.secret or tenant_secret(settings, args.tenant))
        if args.webhooks_command == "secret":
            print(tenant_secret(settings, args.tenant, rotate_it=args.rotate))
            return 0
        set_endpoint(settings, args.tenant, None if args.clear else args.url)
    except (LookupError, UnsafeUrl, ValueError) as exc:
        print(f"vlmq: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
