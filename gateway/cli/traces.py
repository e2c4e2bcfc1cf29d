"""``strata traces list|show`` and ``strata replay``: the Python client from a terminal.

They talk to a running editor API with an editor token (``--token`` / ``STRATA_TOKEN``),
exactly as the editor page does. The API is found where ``strata serve`` with the same
environment listens: ``--editor-url``, else ``STRATA_EDITOR_URL``, else
``http://STRATA_HOST:STRATA_EDITOR_PORT`` (a wildcard host means loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

import orjson

from gateway.cli import options
from gateway.config import ServeSettings
from trace_store.client import Client
from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from trace_store.types import JSONObject

#: What says where a ``strata serve`` listens; the only variables a client reads of it.
_ADDRESS_VARS = ("STRATA_EDITOR_URL", "STRATA_HOST", "STRATA_EDITOR_PORT")

ADDRESS_HELP = (
    "the editor API; else STRATA_EDITOR_URL, else http://STRATA_HOST:STRATA_EDITOR_PORT"
    " as for `strata serve` (default http://127.0.0.1:8001)"
)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds <= 3600, got {text!r}")
    return value


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--editor-url", metavar="URL", help=ADDRESS_HELP)
    parser.add_argument("--token", help="editor token (STRATA_TOKEN)")
    parser.add_argument("--canvas", help="canvas name (STRATA_CANVAS)")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for an answer (default 60)",
    )


def editor_url(args: argparse.Namespace) -> str:
    """The editor API a client reaches: ``--editor-url`` or ``strata serve``'s settings."""
    # The same parsing and validation as `strata serve`, over only the address variables:
    # a setting the client does not use (a policy file, a secret) cannot stop it.
    env = options.config(args).subset(_ADDRESS_VARS)
    return ServeSettings.from_env(env, editor_url=args.editor_url).local_editor_url


def _client(args: argparse.Namespace) -> tuple[Client, str]:
    token = args.token or options.config(args).get("STRATA_TOKEN")
    if not token:
        raise ConfigError("STRATA_TOKEN (--token): an editor token is required")
    canvas = args.canvas or options.config(args).get("STRATA_CANVAS")
    if not canvas:
        raise ConfigError("STRATA_CANVAS (--canvas): name the canvas")
    return Client(editor_url(args), token, timeout=args.timeout), canvas


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _list(args: argparse.Namespace) -> None:
    client, canvas = _client(args)
    async with client:
        handlers = (
            [args.handler] if args.handler else [h["id"] for h in await client.handlers(canvas)]
        )
        # Everything is fetched before anything is printed: a failure is then the only
        # output, not a table header followed by an error.
        found = [(h, (await client.traces(canvas, h, limit=args.limit))[0]) for h in handlers]
    print(f"{'trace_id':36}  {'handler':20}  {'started_at':27}  status  {'ms':>8}  patches")
    for handler, traces in found:
        for t in traces:
            status = "-" if t["status"] is None else t["status"]
            print(
                f"{t['trace_id']:36}  {handler:20}  {t['started_at']:27}  {status!s:>6}"
                f"  {t['duration_ms']:8.3f}  {t['patch_count']}"
            )


async def _show(args: argparse.Namespace) -> None:
    client, canvas = _client(args)
    async with client:
        doc: JSONObject
        doc = await (client.merged if args.merged else client.trace)(canvas, args.trace_id)
    _print_json(doc)


async def _replay(args: argparse.Namespace) -> int:
    from gateway.loader import load_canvas
    from runtime.replay import replay

    client, canvas_name = _client(args)
    canvas = load_canvas(args.app)
    if canvas.name != canvas_name:
        raise ConfigError(
            f"STRATA_APP (--app): {args.app!r} is canvas {canvas.name!r}, but STRATA_CANVAS"
            f" (--canvas) is {canvas_name!r}"
        )
    async with client:
        manifest = await client.manifest(canvas_name, args.trace_id)
        doc = await client.base(manifest)
    report = await replay(canvas, doc, handler_id=manifest["handler_id"])
    if args.json:
        _print_json(report.as_json())
    elif report.same:
        print(f"replay of {report.trace_id} ({report.handler_id}): no difference")
    else:
        count = len(report.differences)
        print(f"replay of {report.trace_id} ({report.handler_id}): {count} difference(s)")
        for diff in report.differences:
            print(f"- [{diff.kind}] {diff.message}")
            print(f"    recorded: {orjson.dumps(diff.recorded).decode()[:500]}")
            print(f"    now:      {orjson.dumps(diff.now).decode()[:500]}")
    return 0 if report.same else 1


def cmd_traces_list(args: argparse.Namespace) -> None:
    asyncio.run(_list(args))


def cmd_traces_show(args: argparse.Namespace) -> None:
    asyncio.run(_show(args))


def cmd_replay(args: argparse.Namespace) -> None:
    raise SystemExit(asyncio.run(_replay(args)))


def add_traces_commands(sub: Any) -> None:
    """Add ``traces list``, ``traces show`` and ``replay`` to the ``strata`` parser."""
    traces = sub.add_parser("traces", help="list and show traces through the editor API")
    traces_sub = traces.add_subparsers(dest="traces_command", required=True)
    listing = traces_sub.add_parser("list", help="a canvas's recent traces")
    _client_flags(listing)
    listing.add_argument("--handler", help="only this handler id")
    listing.add_argument("--limit", type=int, default=20, help="traces per handler (max 500)")
    listing.set_defaults(func=cmd_traces_list)
    show = traces_sub.add_parser("show", help="print one trace as JSON")
    show.add_argument("trace_id")
    _client_flags(show)
    show.add_argument("--merged", action="store_true", help="fold the patches into the view")
    show.set_defaults(func=cmd_traces_show)

    rep = sub.add_parser(
        "replay", help="re-run a trace on the current code, builtins answered from the trace"
    )
    rep.add_argument("trace_id")
    _client_flags(rep)
    rep.add_argument(
        "--app", required=True, help="the canvas's current code, MODULE:ATTR or PATH.py:ATTR"
    )
    rep.add_argument("--json", action="store_true", help="print the report as JSON")
    rep.set_defaults(func=cmd_replay)
