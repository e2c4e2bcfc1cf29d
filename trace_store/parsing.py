"""Numbers from untrusted text, strictly.

``str.isdigit()`` is true for ``"²"`` and for other Unicode digits that ``int()``
refuses, and ``int()`` refuses more than 4,300 digits: a query string or header checked
that way answers 500. These helpers accept ASCII digits only, of bounded length, so a
caller can answer a clear 4xx instead.
"""

from __future__ import annotations

import re
from typing import Final

_DIGITS: Final = re.compile(r"[0-9]+")


def ascii_uint(text: str, max_digits: int) -> int | None:
    """``text`` as a non-negative integer, or ``None`` unless it is 1 to ``max_digits``
    ASCII digits."""
    if not 0 < len(text) <= max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
