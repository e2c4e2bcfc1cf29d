"""``strata store cors|check``: set up and probe the object store from a terminal.

``strata store cors --store URL --origin ORIGIN [--origin ...]`` lets the editor's
origin(s) fetch signed URLs from the bucket; ``strata store check --store URL`` reports
whether the store is reachable and usable (the same check ``serve`` runs at start-up).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gateway.cli import options

if TYPE_CHECKING:
    import argparse

    from trace_store.backends.base import ObjectStore


async def _cors(store: ObjectStore, origins: list[str]) -> str:
    try:
        if not store.supports_cors:
            return (
                f"{store.describe()}: no bucket CORS to set; its signed URLs are served by"
                " strata's editor server"
            )
        await store.set_cors(origins)
        return f"{store.describe()}: CORS allows GET/HEAD from {', '.join(origins)}"
    finally:
        await store.close()


async def _check(store: ObjectStore) -> str:
    try:
        await store.check()
        return f"{store.describe()}: ok"
    finally:
        await store.close()


def cmd_store_cors(args: argparse.Namespace) -> None:
    """Configure bucket CORS for the editor origins."""
    print(asyncio.run(_cors(options.store(args), list(args.origins))), flush=True)


def cmd_store_check(args: argparse.Namespace) -> None:
    """Check that the store is reachable, the bucket exists and credentials work."""
    print(asyncio.run(_check(options.store(args))), flush=True)


def add_store_commands(subparsers: Any) -> None:
    """Add ``store cors`` and ``store check`` to the ``strata`` sub-command parsers.

    Each command sets ``func``; failures raise :class:`~trace_store.errors.StrataError`
    (a :class:`ConfigError` naming ``STRATA_STORE`` for an unusable store).
    """
    store = subparsers.add_parser("store", help="object store set-up and checks")
    store_sub = store.add_subparsers(dest="store_command", required=True)

    cors = store_sub.add_parser("cors", help="allow the editor origin(s) to fetch signed URLs")
    cors.add_argument("--store", help="object store URL (STRATA_STORE)")
    cors.add_argument(
        "--origin",
        dest="origins",
        action="append",
        required=True,
        help="editor origin, e.g. https://editor.example.com (repeatable)",
    )
    cors.set_defaults(func=cmd_store_cors)

    check = store_sub.add_parser("check", help="check that the store is reachable and usable")
    check.add_argument("--store", help="object store URL (STRATA_STORE)")
    check.set_defaults(func=cmd_store_check)
