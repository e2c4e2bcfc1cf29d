"""``strata traces list|show`` and ``strata replay``: the Python client from a terminal.

They talk to a running editor API (``--editor-url`` / ``STRATA_EDITOR_URL``) with an
editor token (``--token`` / ``STRATA_TOKEN``), exactly as the editor page does.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

import orjson

from trace_store.client import Client
from trace_store.errors import ConfigError

if TYPE_CHECKING:
    import argparse

    from trace_store.types import JSONObject

DEFAULT_EDITOR_URL = "http://127.0.0.1:8001"


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--editor-url", help=f"STRATA_EDITOR_URL (default {DEFAULT_EDITOR_URL})")
    parser.add_argument("--token", help="editor token (STRATA_TOKEN)")
    parser.add_argument("--canvas", help="canvas name (STRATA_CANVAS)")


def _client(args: argparse.Namespace) -> tuple[Client, str]:
    token = args.token or os.environ.get("STRATA_TOKEN")
    if not token:
        raise ConfigError("STRATA_TOKEN (--token): an editor token is required")
    canvas = args.canvas or os.environ.get("STRATA_CANVAS")
    if not canvas:
        raise ConfigError("STRATA_CANVAS (--canvas): name the canvas")
    url = args.editor_url or os.environ.get("STRATA_EDITOR_URL") or DEFAULT_EDITOR_URL
    return Client(url, token), canvas


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _list(args: argparse.Namespace) -> None:
    client, canvas = _client(args)
    async with client:
        handlers = (
            [args.handler] if args.handler else [h["id"] for h in await client.handlers(canvas)]
        )
        print(f"{'trace_id':36}  {'handler':20}  {'started_at':27}  status  {'ms':>8}  patches")
        for handler in handlers:
            traces, _ = await client.traces(canvas, handler, limit=args.limit)
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
        raise ConfigError(f"--app loads canvas {canvas.name!r}, not {canvas_name!r}")
    async with client:
        doc = await client.trace(canvas_name, args.trace_id)
    report = await replay(canvas, doc)
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
    rep.add_argument("--app", required=True, help="the canvas's current code, MODULE:ATTR")
    rep.add_argument("--json", action="store_true", help="print the report as JSON")
    rep.set_defaults(func=cmd_replay)
