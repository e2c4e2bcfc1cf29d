"""`strata lifecycle apply|verify|plan|simulate` against moto (S3 over HTTP) and the
GCS emulator, with traces written through the real writer, commit and outbox.

Acceptance 1 of issue 4: after ``apply``, the bucket's real rules and the objects' real
tags (S3) or ``customTime`` (GCS), read back with the providers' own clients, make
the evaluator say: 1 day later nothing has expired; 8 days later exactly the 10
newest traces survive; unmatched requests go after their own 3 days. Acceptance 3:
``apply`` keeps a foreign rule, ``verify`` fails after an edit, ``apply`` repairs.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from gateway.cli.main import main
from lifecycle_policies.evaluate import (
    GcsObject,
    S3Object,
    expired_gcs,
    expired_s3,
    next_midnight_utc,
)
from tests.fixtures_cloud import S3Server, gcs_raw_client
from tests.pin_support import series, trace_ids, unmatched_key, write_traces
from trace_store.backends.base import ObjectStore
from trace_store.backends.gcs import GCSStore
from trace_store.backends.gcs_client import GCSSettings
from trace_store.backends.url import parse_store_url
from trace_store.db.outbox import PinOutbox, renew_leases

if TYPE_CHECKING:
    from trace_store.db import Pool

FOREIGN = {
    "ID": "ops-logs",
    "Status": "Enabled",
    "Filter": {"Prefix": "logs/"},
    "Expiration": {"Days": 30},
}


async def _run(argv: list[str]) -> int:
    """Run the CLI in a thread (it has its own event loop); returns the exit code."""
    try:
        await asyncio.to_thread(main, argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


async def _populate(store: ObjectStore, pool: Pool) -> tuple[list[str], list[str]]:
    """15 traces of one handler in two writer batches, so two segments (the 5 oldest,
    then the 10 newest), plus 3 unmatched requests; the outbox applied. Returns each
    trace's object key, oldest trace first, and the unmatched keys."""
    traces = series("get_user", 15)
    ids = trace_ids(traces)
    await write_traces(store, pool, traces[:5])
    await write_traces(store, pool, traces[5:])
    unmatched = [unmatched_key() for _ in range(3)]
    for key in unmatched:
        await store.put_new(key, b"{}")
    await PinOutbox(pool, store).drain()
    rows = await pool.fetch("SELECT trace_id::text, object_key FROM traces")
    key_of = {r["trace_id"]: r["object_key"] for r in rows}
    assert len(set(key_of.values())) == 2  # one segment per batch
    return [key_of[t] for t in ids], unmatched


def _objects(trace_keys: list[str], unmatched: list[str]) -> list[str]:
    return sorted(set(trace_keys)) + unmatched


def _check_fates(
    expired: Any, created: datetime, trace_keys: list[str], unmatched: list[str]
) -> None:
    assert expired(created + timedelta(days=1)) == frozenset()
    assert expired(created + timedelta(days=2)) == frozenset()
    after_unmatched = next_midnight_utc(created + timedelta(days=3)) + timedelta(seconds=1)
    assert expired(after_unmatched) == frozenset(unmatched)
    gone = expired(created + timedelta(days=8))
    survivors = set(trace_keys) - gone
    assert survivors == set(trace_keys[-10:])  # exactly the segment of the 10 newest
    assert gone == set(trace_keys[:5]) | set(unmatched)


# -- S3 on moto ----------------------------------------------------------------------


@pytest.fixture
def s3_url(moto_server: S3Server, moto_bucket: str) -> str:
    return f"s3://{moto_bucket}?endpoint={moto_server.endpoint}&region=us-east-1"


def _s3_rules(raw: Any, bucket: str) -> dict[str, Any]:
    return {"Rules": raw.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}


async def test_s3_apply_then_only_the_latest_10_survive_8_days(
    pool: Pool, moto_server: S3Server, moto_bucket: str, s3_url: str
) -> None:
    store = parse_store_url(s3_url)
    try:
        trace_keys, unmatched = await _populate(store, pool)
    finally:
        await store.close()
    assert await _run(["lifecycle", "apply", "--store", s3_url, "--yes"]) == 0

    raw = moto_server.client()
    rules = _s3_rules(raw, moto_bucket)
    assert {rule["ID"] for rule in rules["Rules"]} == {
        "strata-traces",
        "strata-unmatched",
        "strata-abort-multipart",
    }
    objects = []
    for key in _objects(trace_keys, unmatched):
        head = raw.head_object(Bucket=moto_bucket, Key=key)
        tags = raw.get_object_tagging(Bucket=moto_bucket, Key=key)["TagSet"]
        objects.append(S3Object(key, head["LastModified"], {t["Key"]: t["Value"] for t in tags}))
    pinned = {o.key for o in objects if o.tags == {"strata-pinned": "true"}}
    assert pinned == set(trace_keys[-10:])
    created = max(o.created for o in objects)

    _check_fates(lambda at: expired_s3(rules, objects, at), created, trace_keys, unmatched)


async def test_s3_apply_keeps_foreign_rules_and_verify_catches_drift(
    moto_server: S3Server,
    moto_bucket: str,
    s3_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = moto_server.client()
    raw.put_bucket_lifecycle_configuration(
        Bucket=moto_bucket, LifecycleConfiguration={"Rules": [FOREIGN]}
    )
    assert await _run(["lifecycle", "verify", "--store", s3_url]) == 1

    # Without --yes it asks; "n" changes nothing.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert await _run(["lifecycle", "apply", "--store", s3_url]) == 1
    assert _s3_rules(raw, moto_bucket)["Rules"] == [FOREIGN]
    capsys.readouterr()

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert await _run(["lifecycle", "apply", "--store", s3_url]) == 0
    out = capsys.readouterr().out
    assert "added strata-traces" in out
    assert "foreign 'ops-logs' (untouched)" in out
    rules = _s3_rules(raw, moto_bucket)["Rules"]
    assert FOREIGN in rules
    assert len(rules) == 4
    assert await _run(["lifecycle", "verify", "--store", s3_url]) == 0

    # Someone edits strata's rule: verify fails and names it; apply repairs it.
    edited = [
        {**rule, "Expiration": {"Days": 1}} if rule["ID"] == "strata-traces" else rule
        for rule in rules
    ]
    raw.put_bucket_lifecycle_configuration(
        Bucket=moto_bucket, LifecycleConfiguration={"Rules": edited}
    )
    capsys.readouterr()
    assert await _run(["lifecycle", "verify", "--store", s3_url]) == 1
    assert "Expiration.Days: 1 -> 7" in capsys.readouterr().out
    assert await _run(["lifecycle", "apply", "--store", s3_url, "--yes"]) == 0
    assert "changed strata-traces" in capsys.readouterr().out
    assert await _run(["lifecycle", "verify", "--store", s3_url]) == 0
    repaired = _s3_rules(raw, moto_bucket)["Rules"]
    assert FOREIGN in repaired
    assert next(r for r in repaired if r["ID"] == "strata-traces")["Expiration"] == {"Days": 7}


async def test_s3_simulate_lists_what_the_rules_delete_by_a_date(
    pool: Pool, s3_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = parse_store_url(s3_url)
    try:
        trace_keys, unmatched = await _populate(store, pool)
    finally:
        await store.close()
    assert await _run(["lifecycle", "apply", "--store", s3_url, "--yes"]) == 0
    capsys.readouterr()
    at = (datetime.now().astimezone() + timedelta(days=9)).date().isoformat()
    assert await _run(["lifecycle", "simulate", "--store", s3_url, "--at", at]) == 0
    assert capsys.readouterr().out.split() == sorted({*trace_keys[:5], *unmatched})


# -- GCS on the emulator -------------------------------------------------------------


@pytest.fixture
def gcs_url(gcs_bucket: str) -> str:
    return f"gs://{gcs_bucket}"


async def test_gcs_apply_then_only_the_latest_10_survive_8_days(
    pool: Pool,
    gcs_emulator: str,
    gcs_bucket: str,
    gcs_url: str,
) -> None:
    store = parse_store_url(gcs_url)
    try:
        trace_keys, unmatched = await _populate(store, pool)
    finally:
        await store.close()
    assert await _run(["lifecycle", "apply", "--store", gcs_url, "--yes"]) == 0

    raw = gcs_raw_client(gcs_emulator)
    bucket = raw.get_bucket(gcs_bucket)
    rules = {"lifecycle": bucket._properties["lifecycle"]}
    assert len(rules["lifecycle"]["rule"]) == 3

    def read_back() -> list[GcsObject]:
        objects = []
        for key in _objects(trace_keys, unmatched):
            blob = bucket.get_blob(key)
            assert blob is not None
            assert blob.custom_time is not None
            objects.append(GcsObject(key, blob.time_created, blob.custom_time))
        return objects

    objects = read_back()
    created = max(o.created for o in objects)
    assert expired_gcs(rules, objects, created + timedelta(days=1)) == frozenset()

    # Pins are leases: the renewal task moves customTime forward once a day (the
    # interval for a 7-day window). Eight days of it, on the store's clock.
    moment = created
    store = GCSStore(GCSSettings(gcs_bucket, emulator_host=gcs_emulator), now=lambda: moment)
    try:
        for day in range(1, 9):
            moment = created + timedelta(days=day)
            await pool.execute("UPDATE pins SET leased_at = now() - interval '2 days'")
            # One at a time: the emulator loses concurrent metadata patches.
            renewed = await renew_leases(pool, store, older_than=timedelta(days=1), concurrency=1)
            assert renewed == 1  # the newest segment: its 10 traces are the pins
    finally:
        await store.close()
    objects = read_back()
    leases = {o.key: o.custom_time for o in objects}
    assert {k for k in leases if leases[k] == created + timedelta(days=8)} == set(trace_keys[-10:])
    _check_fates(lambda at: expired_gcs(rules, objects, at), created, trace_keys, unmatched)


async def test_gcs_apply_keeps_foreign_rules_and_repairs_drift(
    gcs_emulator: str, gcs_bucket: str, gcs_url: str
) -> None:
    raw = gcs_raw_client(gcs_emulator)
    bucket = raw.get_bucket(gcs_bucket)
    foreign = {"action": {"type": "Delete"}, "condition": {"age": 30, "matchesPrefix": ["logs/"]}}
    bucket.lifecycle_rules = [foreign]
    bucket.patch()
    assert await _run(["lifecycle", "apply", "--store", gcs_url, "--yes"]) == 0
    rules = raw.get_bucket(gcs_bucket)._properties["lifecycle"]["rule"]
    assert rules[0] == foreign
    assert len(rules) == 4
    assert await _run(["lifecycle", "verify", "--store", gcs_url]) == 0

    bucket = raw.get_bucket(gcs_bucket)
    bucket.lifecycle_rules = [
        {**r, "condition": {**r["condition"], "daysSinceCustomTime": 2}}
        if "daysSinceCustomTime" in r["condition"]
        else r
        for r in rules
    ]
    bucket.patch()
    assert await _run(["lifecycle", "verify", "--store", gcs_url]) == 1
    assert await _run(["lifecycle", "apply", "--store", gcs_url, "--yes"]) == 0
    assert await _run(["lifecycle", "verify", "--store", gcs_url]) == 0
    assert raw.get_bucket(gcs_bucket)._properties["lifecycle"]["rule"][0] == foreign
