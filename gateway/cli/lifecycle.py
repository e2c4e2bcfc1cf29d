"""``strata lifecycle``: retention rules for the bucket, from a policy file (SPEC §10).

* ``render --provider s3|gcs [--policy FILE] [--prefix P]`` prints strata's rules as
  the provider's JSON.
* ``plan --store URL`` shows the difference between the policy and the bucket.
* ``apply --store URL [--yes]`` changes only strata's rules (S3: ID ``strata-*``),
  keeps every other rule as it is, asks first unless ``--yes``, prints what changed.
* ``verify --store URL`` exits 1 when the bucket's rules drifted from the policy.
* ``expire --store file:...`` deletes what the rules would expire, for local stores.
* ``simulate --store URL --at DATE`` lists the objects the provider (or the local
  expirer) would have deleted by ``DATE``, given each object's current state.

The policy comes from ``--policy FILE``, else ``STRATA_POLICY``, else the defaults. An
invalid policy fails with exit code 2 and a message naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli import options
from trace_store.errors import InvalidInput

if TYPE_CHECKING:
    import argparse

    from lifecycle_policies.apply import Bucket
    from lifecycle_policies.policy import Policy
    from trace_store.backends.base import ObjectStore


def _close(store: ObjectStore) -> None:
    asyncio.run(store.close())


def _bucket(args: argparse.Namespace) -> tuple[Bucket, Policy]:
    from lifecycle_policies.apply import bucket_of

    policy = options.policy(args)  # validate before touching the network
    store = options.store(args)
    try:
        return bucket_of(store), policy
    except BaseException:
        _close(store)
        raise


def cmd_render(args: argparse.Namespace) -> None:
    """Print the provider's lifecycle JSON for the policy."""
    from lifecycle_policies.render import render_gcs, render_s3

    policy = options.policy(args)
    render = render_s3 if args.provider == "s3" else render_gcs
    print(json.dumps(render(policy, args.prefix or ""), indent=2), flush=True)


def cmd_plan(args: argparse.Namespace) -> None:
    """Show what ``apply`` would change."""
    from lifecycle_policies.apply import plan

    bucket, policy = _bucket(args)
    try:
        wanted = plan(bucket, policy)
        print(f"bucket {bucket.name} ({bucket.provider})", flush=True)
        print(wanted.render_text(), end="", flush=True)
    finally:
        _close(bucket.store)


def cmd_apply(args: argparse.Namespace) -> None:
    """Merge strata's rules into the bucket's lifecycle."""
    bucket, policy = _bucket(args)
    try:
        _apply(args, bucket, policy)
    finally:
        _close(bucket.store)


def _apply(args: argparse.Namespace, bucket: Bucket, policy: Policy) -> None:
    from lifecycle_policies.apply import plan, write_rules

    wanted = plan(bucket, policy)
    print(f"bucket {bucket.name} ({bucket.provider})", flush=True)
    print(wanted.render_text(), end="", flush=True)
    if not wanted.has_drift:
        return
    if not args.yes and not _confirm(f"Apply these changes to {bucket.name}? [y/N] "):
        print("Nothing changed.", flush=True)
        raise SystemExit(1)
    write_rules(bucket, wanted)
    done = {"add": "added", "change": "changed", "remove": "removed"}
    for change in wanted.changes:
        if change.kind in done:
            print(f"{done[change.kind]} {change.name}", flush=True)
    if plan(bucket, policy).has_drift:
        raise InvalidInput(f"bucket {bucket.name}: rules still differ after apply")
    print(f"Applied; {len(wanted.foreign)} foreign rule(s) kept as they were.", flush=True)


def _confirm(question: str) -> bool:
    print(question, end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_verify(args: argparse.Namespace) -> None:
    """Exit 1 on drift between the bucket's rules and the policy."""
    from lifecycle_policies.apply import plan

    bucket, policy = _bucket(args)
    try:
        result = plan(bucket, policy)
    finally:
        _close(bucket.store)
    if result.has_drift:
        print(result.render_text(), end="", flush=True)
        print(f"strata: bucket {bucket.name} drifted from the policy", file=sys.stderr)
        raise SystemExit(1)
    print(f"bucket {bucket.name} ({bucket.provider}): lifecycle rules match the policy")


def _local(store: ObjectStore) -> ObjectStore:
    if not store.expires_by_strata:
        raise InvalidInput(
            f"{store.describe()}: the bucket's lifecycle rules expire objects there;"
            " `expire` is for file: stores"
        )
    return store


def cmd_expire(args: argparse.Namespace) -> None:
    """Delete the local store's expired objects (the only deleting code path)."""
    policy = options.policy(args)
    store = _local(options.store(args))
    print("\n".join(asyncio.run(_expire(args, store, policy))) or "nothing expired", flush=True)


async def _expire(args: argparse.Namespace, store: Any, policy: Policy) -> list[str]:
    from trace_store import db, retention
    from trace_store.db import pins
    from trace_store.db.outbox import PinOutbox

    if not (args.database_url or args.data_dir or options.config(args).get("STRATA_DATABASE_URL")):
        return await retention.expire_local(store, policy)
    from gateway.serve import resolve_database

    settings = options.settings(args)
    async with contextlib.AsyncExitStack() as stack:
        pool = await db.connect_pool(await resolve_database(settings, stack), max_size=2)
        stack.push_async_callback(pool.close)
        # Bring the markers up to date first; the database's pins protect the rest.
        await PinOutbox(pool, store).drain()
        return await retention.expire_local(store, policy, pinned=await pins.pinned_keys(pool))


def _moment(text: str) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--at: expected a date or an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def cmd_simulate(args: argparse.Namespace) -> None:
    """List the objects that would be deleted by ``--at`` (nothing is deleted)."""
    at = _moment(args.at)
    policy = options.policy(args)
    store = options.store(args)
    try:
        keys = _simulate(store, policy, at)
    finally:
        _close(store)
    for key in sorted(keys):
        print(key)
    print(f"{len(keys)} object(s) expired by {at.isoformat()}", file=sys.stderr)


def _simulate(store: ObjectStore, policy: Policy, at: datetime) -> list[str]:
    from lifecycle_policies import apply
    from lifecycle_policies.evaluate import expired_gcs, expired_s3

    if store.expires_by_strata:
        from trace_store import retention

        return asyncio.run(retention.expire_local(store, policy, now=at, dry_run=True))
    bucket = apply.bucket_of(store)
    rules = apply.read_rules(bucket) or {}
    if bucket.provider == "s3":
        return sorted(expired_s3(rules, apply.s3_objects(bucket), at))
    return sorted(expired_gcs(rules, apply.gcs_objects(bucket), at))


def add_lifecycle_commands(subparsers: Any) -> None:
    """Add ``lifecycle render|plan|apply|verify|expire|simulate`` to the ``strata``
    sub-command parsers. Each command sets ``func``; failures raise
    :class:`~trace_store.errors.StrataError` (exit code 2)."""
    lifecycle = subparsers.add_parser("lifecycle", help="retention rules of the object store")
    sub = lifecycle.add_subparsers(dest="lifecycle_command", required=True)

    def policy_flag(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--policy", type=Path, help="policy TOML file (STRATA_POLICY)")

    render = sub.add_parser("render", help="print strata's rules as the provider's JSON")
    render.add_argument("--provider", choices=("s3", "gcs"), required=True)
    render.add_argument("--prefix", help="the store URL's key prefix, if any")
    policy_flag(render)
    render.set_defaults(func=cmd_render)

    for name, func, text in (
        ("plan", cmd_plan, "show how the bucket's rules differ from the policy"),
        ("apply", cmd_apply, "change strata's rules on the bucket (asks first)"),
        ("verify", cmd_verify, "exit 1 if the bucket's rules drifted from the policy"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--store", help="object store URL (STRATA_STORE)")
        policy_flag(command)
        if name == "apply":
            command.add_argument("--yes", action="store_true", help="do not ask")
        command.set_defaults(func=func)

    expire = sub.add_parser("expire", help="delete expired objects of a file: store")
    expire.add_argument("--store", help="object store URL (STRATA_STORE)")
    expire.add_argument("--database-url", help="Postgres DSN (STRATA_DATABASE_URL)")
    expire.add_argument("--data-dir", help="data directory of an embedded Postgres")
    policy_flag(expire)
    expire.set_defaults(func=cmd_expire)

    simulate = sub.add_parser("simulate", help="list the objects deleted by a date")
    simulate.add_argument("--store", help="object store URL (STRATA_STORE)")
    simulate.add_argument("--at", required=True, help="date (UTC midnight) or ISO 8601 time")
    policy_flag(simulate)
    simulate.set_defaults(func=cmd_simulate)
