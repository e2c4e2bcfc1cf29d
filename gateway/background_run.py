"""One recorded run of a worker or a cron, and its trace for the writer (SPEC §15):
what :mod:`gateway.workers` and :mod:`gateway.crons` share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.execute import execute
from trace_store import keys
from trace_store.document.values import to_json
from trace_store.record import PendingTrace

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from gateway.services import Services
    from runtime.canvas import Handler
    from trace_store.record import Execution


def run_recorded(services: Services, handler: Handler, argument: Any) -> Awaitable[Execution]:
    """Run a worker (on a message's value) or a cron (``argument`` ``None``), recorded."""
    return execute(
        handler,
        argument,
        record=True,
        max_calls=services.settings.limits.max_calls,
        sync_pool=services.sync_pool,
    )


def submit(services: Services, handler: Handler, run: Execution, doc_input: dict[str, Any]) -> None:
    """Hand the run's trace to the writer: ``doc_input`` is the whole ``input`` (tagged)."""
    services.writer.submit(
        PendingTrace(
            canvas=handler.canvas,
            kind=keys.TRACES,
            handler=handler.description,
            started_ns=run.started_ns,
            duration_ns=run.duration_ns,
            method="",
            path="",
            query_string="",
            params={},
            raw_headers=(),
            body=b"",
            error=run.error,
            calls=run.calls,
            calls_truncated=run.truncated_calls,
            origin_ns=run.origin_ns,
            input=doc_input,
            value=None if run.error is not None else to_json(run.value),
        )
    )
