"""Patches: small Postgres rows appended on top of an immutable base trace.

A patch document is built from a run (see :mod:`runtime.rerun`), given its ``seq`` by
the database and stored compressed. The base object is never touched. A patch whose
compressed document exceeds the limit is refused before anything is written.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from trace_store.db import notify
from trace_store.document import codec
from trace_store.document.build import (
    body_doc,
    calls_doc,
    error_doc,
    headers_doc,
    redacted_body,
)
from trace_store.document.values import hash_tagged_args, to_json
from trace_store.errors import PayloadTooLarge
from trace_store.timestamps import rfc3339, rfc3339_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trace_store.db import Pool
    from trace_store.document.build import TraceLimits
    from trace_store.record import Execution, FunctionRun
    from trace_store.types import JSONObject

FORMAT: Final = "strata.patch/1"
MAX_PATCH_BYTES: Final = 256 * 1024


def rerun_document(execution: Execution, limits: TraceLimits) -> JSONObject:
    """The kind-specific part of a ``rerun`` patch."""
    result: JSONObject | None
    if execution.status is None:  # a worker's or a cron's: the value it returned
        result = None if execution.error is not None else {"value": to_json(execution.value)}
    else:
        body, _ = body_doc(
            redacted_body(execution.body, execution.headers, limits), limits.max_body_bytes
        )
        result = {
            "status": execution.status,
            "headers": headers_doc(execution.headers, limits.redact_headers),
            "body": body,
        }
    return {
        "kind": "rerun",
        "result": result,
        "error": None if execution.error is None else error_doc(execution.error),
        "calls": calls_doc(execution.calls or [], execution.origin_ns),
        "duration_ms": round(execution.duration_ns / 1e6, 3),
        "started_at": rfc3339(execution.started_ns),
    }


def function_run_document(function: str, args: list[Any], run: FunctionRun) -> JSONObject:
    """The kind-specific part of a ``function_run`` patch."""
    tagged = [to_json(a) for a in args]
    doc: JSONObject = {
        "kind": "function_run",
        "function": function,
        "args": tagged,
        "args_hash": hash_tagged_args(tagged, {}),
        "calls": calls_doc(run.calls, run.origin_ns),
        "duration_ms": round(run.duration_ns / 1e6, 3),
    }
    if run.error is not None:
        doc["error"] = error_doc(run.error)
    else:
        doc["result"] = to_json(run.result)
    return doc


async def append(
    pool: Pool,
    canvas: str,
    trace_id: str,
    trace_started_at: datetime,
    body: JSONObject,
    *,
    max_bytes: int = MAX_PATCH_BYTES,
) -> JSONObject:
    """Store a patch with the next ``seq`` of its trace and publish a ``patch`` event.

    Raises :class:`PayloadTooLarge` (and writes nothing) when the compressed document
    is over ``max_bytes``.
    """
    patch_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        seq = await conn.fetchval(
            "INSERT INTO patch_seqs (canvas, trace_id, last_seq) VALUES ($1, $2, 1)"
            " ON CONFLICT (canvas, trace_id) DO UPDATE SET last_seq = patch_seqs.last_seq + 1"
            " RETURNING last_seq",
            canvas,
            trace_id,
        )
        created = datetime.now(UTC)
        doc: JSONObject = {
            "format": FORMAT,
            "patch_id": patch_id,
            "trace_id": trace_id,
            "seq": seq,
            "created_at": rfc3339_of(created),
            **body,
        }
        data = codec.encode(doc)
        if len(data) > max_bytes:
            # Leaving the transaction by raising rolls the seq counter back too.
            raise PayloadTooLarge(
                f"the {body['kind']} patch is {len(data)} bytes compressed, over the limit of"
                f" {max_bytes} bytes; return less data from the handler or function"
            )
        await conn.execute(
            "INSERT INTO patches (canvas, trace_id, seq, patch_id, kind, created_at,"
            " trace_started_at, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            canvas,
            trace_id,
            seq,
            patch_id,
            body["kind"],
            created,
            trace_started_at,
            data,
        )
        await notify.publish(
            conn,
            canvas,
            "patch",
            {"trace_id": trace_id, "patch_id": patch_id, "seq": seq, "kind": body["kind"]},
        )
    return doc


async def list_patches(pool: Pool, canvas: str, trace_id: str) -> list[JSONObject]:
    """Every patch of a trace, in ``seq`` order."""
    records = await pool.fetch(
        "SELECT document FROM patches WHERE canvas = $1 AND trace_id = $2 ORDER BY seq",
        canvas,
        trace_id,
    )
    return [codec.decode(bytes(r["document"])) for r in records]


async def count_patches(pool: Pool, canvas: str, trace_ids: Sequence[str]) -> dict[str, int]:
    """How many patches each of ``trace_ids`` has (absent: none)."""
    if not trace_ids:
        return {}
    records = await pool.fetch(
        "SELECT trace_id, last_seq FROM patch_seqs"
        " WHERE canvas = $1 AND trace_id = ANY($2::uuid[])",
        canvas,
        list(trace_ids),
    )
    return {str(r["trace_id"]): int(r["last_seq"]) for r in records}


async def latest_rerun_status(
    pool: Pool, canvas: str, trace_ids: Sequence[str]
) -> dict[str, int | None]:
    """The response status of each trace's latest rerun, for the traces that have one
    (``None``: that rerun raised before answering)."""
    if not trace_ids:
        return {}
    records = await pool.fetch(
        "SELECT DISTINCT ON (trace_id) trace_id, document FROM patches"
        " WHERE canvas = $1 AND trace_id = ANY($2::uuid[]) AND kind = 'rerun'"
        " ORDER BY trace_id, seq DESC",
        canvas,
        list(trace_ids),
    )
    found: dict[str, int | None] = {}
    for r in records:
        result = codec.decode(bytes(r["document"])).get("result") or {}
        status = result.get("status")
        found[str(r["trace_id"])] = status if isinstance(status, int) else None
    return found
