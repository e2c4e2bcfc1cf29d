"""The ``strata`` command line.

An expected failure (a bad flag or setting, an unreachable server, an error answer, a
missing file) is one line on stderr and exit status 2, never a traceback: commands raise
:class:`~trace_store.errors.StrataError` and :func:`main` prints it. A traceback means a
bug.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.cli import options
from gateway.cli.lifecycle import add_lifecycle_commands
from gateway.cli.store import add_store_commands
from gateway.cli.traces import add_traces_commands
from gateway.config import ROLES
from gateway.loader import SETTING
from trace_store import db, logs
from trace_store.config import Config
from trace_store.db import tokens
from trace_store.errors import ConfigError, StrataError
from trace_store.keys import check_canvas

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence
    from typing import Any, NoReturn

    from gateway.config import ServeSettings

EXIT_STATUS = """\
exit status:
  0    success
  1    `replay` found a difference; `lifecycle verify` found drift;
       `lifecycle apply` was not confirmed
  2    an error, explained in one line on stderr: a bad flag or setting, a
       server that cannot be reached or answers with an error, an unreadable
       file (-v adds the details)
  130  interrupted (Ctrl-C)
"""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (not the usage, then the error),
    and whose help ends with the exit statuses. Sub-command parsers are of this class
    too (``add_subparsers`` uses the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EXIT_STATUS)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit 2 (argparse's own convention)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _run_loop(main: Coroutine[Any, Any, None], config: Config) -> None:
    """Run on uvloop where available (STRATA_LOOP=asyncio opts out)."""
    if config.get_choice("STRATA_LOOP", "uvloop", ("uvloop", "asyncio")) == "uvloop":
        try:
            import uvloop

            uvloop.run(main)
            return
        except ImportError:
            pass
    asyncio.run(main)


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

    settings = options.settings(args)
    if not settings.apps:
        raise ConfigError(f"{SETTING}: no canvas given (--app MODULE:ATTR or PATH.py:ATTR)")
    _run_loop(serve_forever(settings, print_dev_tokens=args.print_dev_token), options.config(args))


def cmd_migrate(args: argparse.Namespace) -> None:
    async def work(pool: db.Pool) -> None:
        print("migrations applied", flush=True)

    _run_loop(_with_pool(options.settings(args), work), options.config(args))


def cmd_token_create(args: argparse.Namespace) -> None:
    check_canvas(args.canvas)  # before starting or reaching any Postgres

    async def work(pool: db.Pool) -> None:
        print(await tokens.create_token(pool, args.canvas), flush=True)

    _run_loop(_with_pool(options.settings(args), work), options.config(args))


def cmd_token_list(args: argparse.Namespace) -> None:
    if args.canvas is not None:
        check_canvas(args.canvas)

    async def work(pool: db.Pool) -> None:
        print(f"{'id':{tokens.ID_CHARS}}  {'canvas':24}  created_at")
        for info in await tokens.list_tokens(pool, args.canvas):
            print(f"{info.id}  {info.canvas:24}  {info.created_at.isoformat()}")

    _run_loop(_with_pool(options.settings(args), work), options.config(args))


def cmd_token_revoke(args: argparse.Namespace) -> None:
    async def work(pool: db.Pool) -> None:
        info = await tokens.revoke_token(pool, args.token_id)
        print(f"revoked {info.id} (canvas {info.canvas})", flush=True)

    _run_loop(_with_pool(options.settings(args), work), options.config(args))


def _since(text: str) -> datetime:
    """``--since``: an ISO 8601 date or time (UTC unless it says), or an age like ``7d``,
    ``12h`` or ``30m``."""
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1:] in units and text[:-1].isascii() and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or time, or an age like 7d, 12h, 30m; got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_index_rebuild(args: argparse.Namespace) -> None:
    from trace_store.backends.url import parse_store_url
    from trace_store.rebuild import Progress, rebuild

    settings = options.settings(args)
    store = parse_store_url(settings.store_url or settings.default_store_url)
    show = sys.stderr.isatty()
    started = time.monotonic()

    def progress(p: Progress) -> None:
        if show:
            rate = p.done / max(time.monotonic() - started, 1e-9)
            print(f"\r{p.done:,} of {p.total:,} objects, {rate:,.0f}/s", end="", file=sys.stderr)

    async def work(pool: db.Pool) -> None:
        try:
            report = await rebuild(store, pool, since=args.since, on_progress=progress)
        finally:
            await store.close()
        seconds = time.monotonic() - started
        if show:
            print(file=sys.stderr)
        print(
            f"{store.describe()}: {report.listed:,} objects listed,"
            f" {report.present:,} of them already indexed, {report.skipped_old:,} older than"
            " --since;"
            f" indexed {report.indexed:,} traces and {report.unmatched:,} unmatched requests"
            f" in {seconds:.1f} s ({report.indexed / max(seconds, 1e-9):,.0f} traces/s)",
            flush=True,
        )
        for problem in report.invalid[:20]:
            print(f"skipped: {problem}", file=sys.stderr)
        if len(report.invalid) > 20:
            print(f"skipped: {len(report.invalid) - 20} more", file=sys.stderr)

    _run_loop(_with_pool(settings, work), options.config(args))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="strata", description="strata: traces in object storage, for the editor.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging; tracebacks for errors"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway and the editor API")
    serve.add_argument(
        "--app",
        dest="apps",
        action="append",
        help="canvas MODULE:ATTR or PATH.py:ATTR (repeatable; STRATA_APP, comma-separated)",
    )
    serve.add_argument("--store", help="object store URL (STRATA_STORE)")
    options.db_flags(serve)
    serve.add_argument("--gateway-port", type=int, help="STRATA_GATEWAY_PORT (default 8000)")
    serve.add_argument("--editor-port", type=int, help="STRATA_EDITOR_PORT (default 8001)")
    serve.add_argument("--host", help="STRATA_HOST (default 127.0.0.1)")
    serve.add_argument("--role", choices=ROLES, help="STRATA_ROLE")
    serve.add_argument("--policy", help="retention policy TOML file (STRATA_POLICY)")
    serve.add_argument(
        "--reload",
        action="store_true",
        default=None,
        help="load changes of the canvas files without a restart (STRATA_RELOAD)",
    )
    serve.add_argument(
        "--print-dev-token",
        action="store_true",
        help="print an editor token per canvas (kept in the data dir; for development)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply Postgres migrations")
    options.db_flags(migrate)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="editor tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a new editor token for one canvas")
    create.add_argument("--canvas", required=True)
    options.db_flags(create)
    create.set_defaults(func=cmd_token_create)
    listing = token_sub.add_parser("list", help="the stored tokens: id, canvas, creation time")
    listing.add_argument("--canvas", help="only this canvas's tokens")
    options.db_flags(listing)
    listing.set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser(
        "revoke", help="delete a token; every serve refuses it at once (401)"
    )
    revoke.add_argument("token_id", help="the id `token list` shows (8 or more hex digits)")
    options.db_flags(revoke)
    revoke.set_defaults(func=cmd_token_revoke)

    index = sub.add_parser("index", help="the Postgres index of the stored traces")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    rebuild = index_sub.add_parser(
        "rebuild",
        help="index every stored trace the index lacks (after Postgres was lost); idempotent",
    )
    rebuild.add_argument("--store", help="object store URL (STRATA_STORE; default the data dir's)")
    rebuild.add_argument(
        "--since",
        type=_since,
        help="only traces since then: an ISO date or time, or an age like 7d, 12h, 30m",
    )
    options.db_flags(rebuild)
    rebuild.set_defaults(func=cmd_index_rebuild)

    add_store_commands(sub)
    add_lifecycle_commands(sub)
    add_traces_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``strata`` console script."""
    args = build_parser().parse_args(argv)
    args.config = Config()  # every setting of this run is read through it
    try:
        logs.configure(logging.DEBUG if args.verbose else logging.WARNING, args.config)
    except StrataError as exc:
        print(f"strata: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not args.verbose and args.func is cmd_serve:
        # A server logs its own progress, but not the libraries' chatter (the embedded
        # server's initdb output): that is noise on a console. One-shot commands print
        # their result, or one line for an error.
        logging.getLogger("strata").setLevel(logging.INFO)
    try:
        args.func(args)
    except StrataError as exc:
        if args.verbose:
            logging.getLogger("strata").debug("error details", exc_info=exc)
        # One line whatever the message holds (a server's text, a policy file's excerpt).
        print(f"strata: error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:
        # The reader went away (`strata traces list | head`): not an error of ours.
        # Python would report the broken pipe again when flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
