"""The ``strata`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from typing import TYPE_CHECKING

from gateway.config import ServeSettings
from gateway.lifecycle_cli import add_lifecycle_commands
from gateway.store_cli import add_store_commands
from gateway.traces_cli import add_traces_commands
from trace_store import db, tokens
from trace_store.errors import StrataError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence
    from typing import Any


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where available (STRATA_LOOP=asyncio opts out)."""
    if os.environ.get("STRATA_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop

            uvloop.run(main)
            return
        except ImportError:
            pass
    asyncio.run(main)


def _db_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (STRATA_DATA_DIR, default ./.strata)")
    parser.add_argument("--database-url", help="Postgres DSN (STRATA_DATABASE_URL)")


def _settings(args: argparse.Namespace) -> ServeSettings:
    flags = {
        name: getattr(args, name, None)
        for name in (
            "apps",
            "store",
            "database_url",
            "data_dir",
            "gateway_port",
            "editor_port",
            "host",
            "role",
            "policy",
        )
    }
    return ServeSettings.from_env(os.environ, **flags)


async def _with_pool(settings: ServeSettings, work: Callable[[db.Pool], Awaitable[None]]) -> None:
    from gateway.serve import resolve_database

    async with contextlib.AsyncExitStack() as stack:
        dsn = await resolve_database(settings, stack)
        pool = await db.connect_pool(dsn, max_size=2)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await db.migrate(conn)
        await work(pool)


def cmd_serve(args: argparse.Namespace) -> None:
    from gateway.serve import serve_forever

    settings = _settings(args)
    if not settings.apps:
        raise SystemExit("strata serve: no canvas given (--app MODULE:ATTR or STRATA_APP)")
    _run_loop(serve_forever(settings, print_dev_tokens=args.print_dev_token))


def cmd_migrate(args: argparse.Namespace) -> None:
    async def work(pool: db.Pool) -> None:
        print("migrations applied", flush=True)

    _run_loop(_with_pool(_settings(args), work))


def cmd_token_create(args: argparse.Namespace) -> None:
    async def work(pool: db.Pool) -> None:
        print(await tokens.create_token(pool, args.canvas), flush=True)

    _run_loop(_with_pool(_settings(args), work))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway and the editor API")
    serve.add_argument(
        "--app", dest="apps", action="append", help="canvas MODULE:ATTR (repeatable; STRATA_APP)"
    )
    serve.add_argument("--store", help="object store URL (STRATA_STORE)")
    _db_flags(serve)
    serve.add_argument("--gateway-port", type=int, help="STRATA_GATEWAY_PORT (default 8000)")
    serve.add_argument("--editor-port", type=int, help="STRATA_EDITOR_PORT (default 8001)")
    serve.add_argument("--host", help="STRATA_HOST (default 127.0.0.1)")
    serve.add_argument("--role", choices=("all", "gateway", "editor"), help="STRATA_ROLE")
    serve.add_argument("--policy", help="retention policy TOML file (STRATA_POLICY)")
    serve.add_argument(
        "--print-dev-token",
        action="store_true",
        help="print an editor token per canvas (kept in the data dir; for development)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply Postgres migrations")
    _db_flags(migrate)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="editor tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a new editor token for one canvas")
    create.add_argument("--canvas", required=True)
    _db_flags(create)
    create.set_defaults(func=cmd_token_create)

    add_store_commands(sub)
    add_lifecycle_commands(sub)
    add_traces_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``strata`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The embedded server's start-up chatter (initdb output) is noise on a console.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        args.func(args)
    except StrataError as exc:
        print(f"strata: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
