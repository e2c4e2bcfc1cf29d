"""Editor tokens. Only a SHA-256 of each token is stored.

Tokens are 256 random bits, so a plain hash is enough: there is nothing to brute-force
that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

from trace_store.keys import check_canvas

if TYPE_CHECKING:
    from trace_store.db import Pool

PREFIX = "strata_"
ALL_CANVASES = "*"
#: What a token can be on the wire: visible ASCII (RFC 6750's b64token is a subset).
#: Anything else matches no token, and must not reach ``encode()``: a header byte that
#: is not UTF-8 arrives as a lone surrogate, which ``str.encode`` refuses.
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,4096}")


def hash_token(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).digest()


async def create_token(pool: Pool, canvas: str) -> str:
    """Create and return a new token for ``canvas`` (shown once, stored hashed)."""
    check_canvas(canvas)
    token = PREFIX + secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO editor_tokens (token_hash, canvas) VALUES ($1, $2)", hash_token(token), canvas
    )
    return token


async def canvas_of(pool: Pool, token: str, admin_token: str | None = None) -> str | None:
    """The canvas a token is for (:data:`ALL_CANVASES` for the admin token), or ``None``."""
    if not _TOKEN_TEXT.fullmatch(token):
        return None
    # The admin token comes from the environment, which may hold lone surrogates too.
    if admin_token and hmac.compare_digest(
        token.encode(), admin_token.encode("utf-8", "surrogateescape")
    ):
        return ALL_CANVASES
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    found: str | None = await pool.fetchval(
        "SELECT canvas FROM editor_tokens WHERE token_hash = $1", hash_token(token)
    )
    return found
