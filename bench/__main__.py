"""``make bench``: every benchmark, one table each (``BENCH_ARGS`` reach all of them)."""

from __future__ import annotations

from bench import (
    capture,
    cost,
    explain,
    faults,
    gateway,
    index_commit,
    manifest,
    overload,
    rebuild,
    stall,
    store_upload,
    unmatched,
    visibility,
    writer,
)
from bench import queue as queue_bench


def main() -> None:
    capture.main()
    explain.main()
    gateway.main()
    overload.main()
    writer.main()
    index_commit.main()
    manifest.main()
    store_upload.main()
    cost.main()
    visibility.main()
    queue_bench.main()
    unmatched.main()
    rebuild.main()
    stall.main()
    faults.main()


if __name__ == "__main__":
    main()
