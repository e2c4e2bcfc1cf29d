"""Capture, encode and compress one 20-call trace: µs per stage and bytes per trace,
next to an OpenTelemetry SDK baseline recording the same 21 spans, in one run."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import zstandard

from runtime import Canvas, Request
from runtime.execute import execute
from trace_store.document import codec
from trace_store.document.build import TraceLimits, build_trace
from trace_store.record import PendingTrace

canvas = Canvas("bench")


@canvas.function()
def step(value: int) -> int:
    return value * 31 % 1_000_003


@canvas.http("GET", "/chain")
def chain(request: Request) -> dict[str, int]:
    value = int(request.query.get("seed", "1"))
    for _ in range(20):
        value = step(value)
    return {"value": value}


HANDLER = canvas.handlers["chain"]
HEADERS = [(b"Host", b"127.0.0.1:8000"), (b"User-Agent", b"wrk"), (b"Accept", b"*/*")]


def _pending(run: Any, seed: int = 1) -> PendingTrace:
    return PendingTrace.of_run(
        "bench", HANDLER.description, run, method="GET", path="/chain",
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


def _run_sync(record: bool, seed: int = 1) -> Any:
    # The handler is sync, so execute() finishes without suspending: drive it by hand.
    request = Request("GET", "/chain", query=[("seed", str(seed))])
    coro = execute(HANDLER, request, record=record)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("execute suspended")


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
            for _ in range(20):
                with tracer.start_as_current_span("step") as span:
                    span.set_attribute("args", orjson.dumps([value]).decode())
                    value = value * 31 % 1_000_003
                    span.set_attribute("result", value)
        exporter.clear()

    return per_call_us(request, n)


def main(n: int = 2000) -> None:
    limits = TraceLimits()
    untraced = per_call_us(lambda: _run_sync(False), n)
    traced = per_call_us(lambda: _run_sync(True), n)
    run = _run_sync(True)
    pending = _pending(run)
    build = per_call_us(lambda: build_trace(pending, limits), n)
    doc = build_trace(pending, limits)
    raw = orjson.dumps(doc)
    dumps = per_call_us(lambda: orjson.dumps(doc), n)
    compress = per_call_us(lambda: codec.compress(raw), n)
    compressed = codec.compress(raw)

    # The dictionary learns from other requests than the one it compresses (other
    # seeds, so other arguments and results), as it would in production.
    samples = [
        orjson.dumps(build_trace(_pending(_run_sync(True, seed), seed), limits))
        for seed in range(1000, 1500)
    ]
    dictionary = zstandard.train_dictionary(16 * 1024, samples)
    dictionary.precompute_compress(level=codec.LEVEL)
    dict_compressor = zstandard.ZstdCompressor(
        level=codec.LEVEL, dict_data=dictionary, write_content_size=True
    )
    with_dict = dict_compressor.compress(raw)
    compress_dict = per_call_us(lambda: dict_compressor.compress(raw), n)
    otel = otel_baseline(n // 4)

    record = traced - untraced
    total = record + build + dumps + compress
    print("\n## Capture and encode, one 20-call trace (µs per trace, median of rounds)\n")
    print("| stage | µs |")
    print("|---|---|")
    print(f"| handler untraced | {untraced:.1f} |")
    print(f"| recording 21 calls (traced − untraced) | {record:.1f} |")
    print(f"| build document (tag, hash, redact) | {build:.1f} |")
    print(f"| orjson | {dumps:.1f} |")
    print(f"| zstd level {codec.LEVEL} | {compress:.1f} |")
    print(f"| (zstd {codec.LEVEL}, trained 16 KiB dictionary: not used) | {compress_dict:.1f} |")
    print(f"| **capture + encode + compress** | **{total:.1f}** |")
    print(f"| OpenTelemetry SDK, same 21 spans | {otel:.1f} |")
    print(f"| ratio strata / OpenTelemetry | {total / otel:.2f} |")
    print("\n| bytes per trace | raw JSON | zstd | zstd + 16 KiB trained dictionary |")
    print("|---|---|---|---|")
    print(f"| 20-call trace | {len(raw)} | {len(compressed)} | {len(with_dict)} |")


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
