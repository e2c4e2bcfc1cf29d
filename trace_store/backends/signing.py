"""HMAC-signed URLs for stores that strata serves itself (local and memory).

A URL names one object and an expiry; the signature covers both, keyed with
``STRATA_SECRET``. Cloud stores use their provider's own presigning instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from trace_store.backends.base import SignedURL
from trace_store.errors import Forbidden, InvalidInput
from trace_store.keys import check_key
from trace_store.parsing import ascii_uint

#: A signature as :meth:`UrlSigner.sign` writes it: lower-case hex of an HMAC-SHA256.
_SIG_RE = re.compile(r"[0-9a-f]{64}")


class UrlSigner:
    """Signs and verifies ``/objects/<key>?expires=<unix>&sig=<hex>`` URLs."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        if len(secret) < 16:
            raise ValueError("STRATA_SECRET must be at least 16 bytes")
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _mac(self, key: str, expires: int) -> str:
        message = f"GET\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, key: str, expires_in: timedelta, *, now: float | None = None) -> SignedURL:
        """A URL for ``key`` that stops working ``expires_in`` from now."""
        expires = int((time.time() if now is None else now) + expires_in.total_seconds())
        url = (
            f"{self.base_url}/objects/{quote(key)}?expires={expires}&sig={self._mac(key, expires)}"
        )
        return SignedURL(url=url, expires_at=datetime.fromtimestamp(expires, UTC))

    def verify(self, key: str, expires: str, sig: str, *, now: float | None = None) -> str:
        """Return the validated key, or raise :class:`Forbidden` saying why."""
        try:
            check_key(key)
        except InvalidInput:
            raise Forbidden("signed URL names an invalid object key") from None
        expiry = ascii_uint(expires, 12)
        if expiry is None:
            raise Forbidden("signed URL has a malformed expiry")
        # compare_digest refuses non-ASCII text with a TypeError: check the form first.
        if not _SIG_RE.fullmatch(sig) or not hmac.compare_digest(self._mac(key, expiry), sig):
            raise Forbidden("signed URL signature does not match")
        if expiry < (time.time() if now is None else now):
            raise Forbidden("signed URL has expired")
        return key
