"""Capture, encode and compress one trace: µs per stage and bytes per trace, for
``bench.canvas``'s 20-call ``/chain`` next to an OpenTelemetry SDK baseline recording
the same 21 spans, then for its 200-call ``/wide`` and its tagged ``/tagged`` (bytes,
datetimes and big ints as arguments and results), in one run."""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import zstandard

from bench.canvas import CHAIN_CALLS, TAGGED_CALLS, WIDE_CALLS, canvas
from bench.common import MEMORY_DIR
from runtime import Request
from runtime.execute import execute
from trace_store import gc_tuning
from trace_store.document import codec
from trace_store.document.build import TraceLimits, build_trace
from trace_store.record import Execution, PendingTrace
from trace_store.writer import wire
from trace_store.writer.log import TraceLog

HEADERS = [(b"Host", b"127.0.0.1:8000"), (b"User-Agent", b"wrk"), (b"Accept", b"*/*")]
#: Handler id -> (path, user calls).
TRACES = {
    "chain": ("/chain", CHAIN_CALLS),
    "wide": ("/wide", WIDE_CALLS),
    "tagged": ("/tagged", TAGGED_CALLS),
}


def _pending(handler_id: str, run: Execution, seed: int = 1) -> PendingTrace:
    handler = canvas.handlers[handler_id]
    return PendingTrace.of_run(
        canvas.name, handler.description, run, method="GET", path=TRACES[handler_id][0],
        query_string=f"seed={seed}", params={}, raw_headers=HEADERS, body=b"",
    )  # fmt: skip


def per_call_us(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """Median over rounds of the mean µs per call."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def _run_sync(handler_id: str, record: bool, seed: int = 1) -> Execution:
    # The handlers never await, so execute() finishes without suspending: drive it by
    # hand, without an event loop's cost in the figures.
    request = Request("GET", TRACES[handler_id][0], query=[("seed", str(seed))])
    coro = execute(canvas.handlers[handler_id], request, record=record)
    try:
        coro.send(None)
    except StopIteration as done:
        run: Execution = done.value
        return run
    raise RuntimeError("execute suspended")


@dataclass
class Stages:
    """µs per stage of one trace, and its size."""

    untraced: float
    record: float
    build: float
    encode: float
    compress: float
    raw: bytes
    compressed: bytes

    @property
    def total(self) -> float:
        """Everything tracing adds: recording, building, encoding, compressing."""
        return self.record + self.build + self.encode + self.compress


def stages(handler_id: str, n: int) -> Stages:
    """Time each stage of ``handler_id``'s trace, ``n`` calls a round."""
    limits = TraceLimits()
    untraced = per_call_us(lambda: _run_sync(handler_id, False), n)
    traced = per_call_us(lambda: _run_sync(handler_id, True), n)
    pending = _pending(handler_id, _run_sync(handler_id, True))
    build = per_call_us(lambda: build_trace(pending, limits), n)
    doc = build_trace(pending, limits)
    raw = codec.encode_json(doc)
    encode = per_call_us(lambda: codec.encode_json(doc), n)
    compress = per_call_us(lambda: codec.compress(raw), n)
    return Stages(untraced, traced - untraced, build, encode, compress, raw, codec.compress(raw))


#: Traces a frame of the hand-off carries at saturation (what piles up in the sender's
#: 4 ms wait at ~10,000 req/s).
FRAME = 40


def handoff(handler_id: str, n: int) -> tuple[float, float, int]:
    """The gateway's hand-off to the writer process, µs per trace: ``prepare`` and
    pickling a frame of :data:`FRAME` traces plus appending it to a trace log (on
    ``/dev/shm``, as ``bench.gateway`` keeps it); the writer unpickling it; and the
    pickled bytes per trace."""
    batch = [_pending(handler_id, _run_sync(handler_id, True, seed), seed) for seed in range(FRAME)]
    with tempfile.TemporaryDirectory(dir=MEMORY_DIR) as tmp:
        tracelog = TraceLog(Path(tmp), max_bytes=2**40)
        tracelog.open()

        def send() -> bytes:
            data = wire.encode_batch_fast([wire.prepare(p) for p in batch])
            assert data is not None
            tracelog.append(data, len(batch))
            return data

        data = send()
        sent = per_call_us(send, max(1, n // FRAME)) / FRAME
        received = per_call_us(lambda: wire.loads(data), max(1, n // FRAME)) / FRAME
        tracelog.close()
    return sent, received, len(data) // FRAME


def otel_baseline(n: int) -> float:
    """µs per request for the OpenTelemetry SDK recording the same 21 spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    def request() -> None:
        with tracer.start_as_current_span("GET /chain") as root:
            root.set_attribute("http.method", "GET")
            value = 1
            for _ in range(CHAIN_CALLS):
                with tracer.start_as_current_span("step") as span:
                    span.set_attribute("args", orjson.dumps([value]).decode())
                    value = value * 31 % 1_000_003
                    span.set_attribute("result", value)
        exporter.clear()

    return per_call_us(request, n)


def main(n: int = 2000) -> None:
    """Print the stage table for ``/chain`` (with OpenTelemetry and a trained dictionary
    beside it), then the same stages for every route of ``bench.canvas``, with the
    collector set as strata's processes set it (:mod:`trace_store.gc_tuning`: with the
    defaults a young collection every 700 allocations doubles what unpickling a 200-call
    trace costs here, which no strata process pays)."""
    thresholds = gc.get_threshold()
    gc_tuning.tune()
    try:
        _main(n)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _main(n: int) -> None:
    limits = TraceLimits()
    # /wide is ten times the work of a call: a tenth of the calls keeps the run short.
    found = {h: stages(h, n // 10 if h == "wide" else n) for h in TRACES}
    chain = found["chain"]

    # The dictionary learns from other requests than the one it compresses (other
    # seeds, so other arguments and results), as it would in production.
    samples = [
        codec.encode_json(build_trace(_pending("chain", _run_sync("chain", True, s), s), limits))
        for s in range(1000, 1500)
    ]
    dictionary = zstandard.train_dictionary(16 * 1024, samples)
    dictionary.precompute_compress(level=codec.LEVEL)
    dict_compressor = zstandard.ZstdCompressor(
        level=codec.LEVEL, dict_data=dictionary, write_content_size=True
    )
    with_dict = dict_compressor.compress(chain.raw)
    compress_dict = per_call_us(lambda: dict_compressor.compress(chain.raw), n)
    otel = otel_baseline(n // 4)

    calls = CHAIN_CALLS + 1
    title = f"Capture and encode, one {CHAIN_CALLS}-call trace (µs per trace, median of rounds)"
    print(f"\n## {title}\n")
    print("| stage | µs |")
    print("|---|---|")
    print(f"| handler untraced | {chain.untraced:.1f} |")
    print(f"| recording {calls} calls (traced − untraced) | {chain.record:.1f} |")
    print(f"| build document (tag, hash, redact) | {chain.build:.1f} |")
    print(f"| encode JSON (orjson) | {chain.encode:.1f} |")
    print(f"| zstd level {codec.LEVEL} | {chain.compress:.1f} |")
    print(f"| (zstd {codec.LEVEL}, trained 16 KiB dictionary: not used) | {compress_dict:.1f} |")
    print(f"| **capture + encode + compress** | **{chain.total:.1f}** |")
    print(f"| OpenTelemetry SDK, same {calls} spans | {otel:.1f} |")
    print(f"| ratio strata / OpenTelemetry | {chain.total / otel:.3f} |")
    print("\n| bytes per trace | raw JSON | zstd | zstd + 16 KiB trained dictionary |")
    print("|---|---|---|---|")
    print(
        f"| {CHAIN_CALLS}-call trace | {len(chain.raw)} | {len(chain.compressed)} "
        f"| {len(with_dict)} |"
    )

    print("\n## Capture and encode by shape of trace (µs per trace, bytes)\n")
    print(
        "Hand-off: the gateway's `prepare`, pickling and trace-log append of a frame of"
        f" {FRAME} traces, per trace; unpickle: the writer process reading it back.\n"
    )
    print(
        "| route | user calls | handler untraced | recording | build | encode JSON "
        f"| zstd {codec.LEVEL} | **total** | bytes raw | bytes zstd "
        "| hand-off | unpickle | pickled bytes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for handler_id, (path, user_calls) in TRACES.items():
        s = found[handler_id]
        sent, received, pickled = handoff(handler_id, n // 10 if handler_id == "wide" else n)
        print(
            f"| {path} | {user_calls} | {s.untraced:.1f} | {s.record:.1f} | {s.build:.1f} "
            f"| {s.encode:.1f} | {s.compress:.1f} | **{s.total:.1f}** | {len(s.raw):,} "
            f"| {len(s.compressed):,} | {sent:.1f} | {received:.1f} | {pickled:,} |"
        )


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
