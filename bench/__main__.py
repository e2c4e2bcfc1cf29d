"""``make bench``: every benchmark, one table each."""

from __future__ import annotations

import sys

from bench import capture, gateway


def main() -> None:
    sys.argv = [sys.argv[0], *sys.argv[1:]]
    capture.main()
    gateway.main()


if __name__ == "__main__":
    main()
