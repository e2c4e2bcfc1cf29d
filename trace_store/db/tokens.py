"""Editor tokens. Only a SHA-256 of each token is stored.

Tokens are 256 random bits, so a plain hash is enough: there is nothing to brute-force
that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trace_store.errors import InvalidInput, NotFound
from trace_store.keys import check_canvas

if TYPE_CHECKING:
    from datetime import datetime

    from trace_store.db import Pool

PREFIX = "strata_"
ALL_CANVASES = "*"
#: Revocations are announced here, so every ``serve`` drops its cached answer at once.
REVOKED_CHANNEL = "strata_tokens"
#: A token is named, in listings and revocations, by the first hex digits of its hash.
ID_CHARS = 12
_TOKEN_ID = re.compile(r"[0-9a-f]{8,64}")
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


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token as ``strata token list`` shows it: never the token itself."""

    id: str
    canvas: str
    created_at: datetime


def _info(row: Any) -> TokenInfo:
    return TokenInfo(bytes(row["token_hash"]).hex()[:ID_CHARS], row["canvas"], row["created_at"])


async def list_tokens(pool: Pool, canvas: str | None = None) -> list[TokenInfo]:
    """Every token (of ``canvas``, when given), oldest first."""
    if canvas is not None:
        check_canvas(canvas)
    rows = await pool.fetch(
        "SELECT token_hash, canvas, created_at FROM editor_tokens"
        " WHERE $1::text IS NULL OR canvas = $1 ORDER BY created_at, token_hash",
        canvas,
    )
    return [_info(row) for row in rows]


async def revoke_token(pool: Pool, token_id: str) -> TokenInfo:
    """Delete the one token whose id starts with ``token_id`` and announce it."""
    token_id = token_id.strip().lower()
    if not _TOKEN_ID.fullmatch(token_id):
        raise InvalidInput(f"invalid token id {token_id[:80]!r}: expected 8 or more hex digits")
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "DELETE FROM editor_tokens WHERE substring(encode(token_hash, 'hex') for $2) = $1"
            " RETURNING token_hash, canvas, created_at",
            token_id,
            len(token_id),
        )
        if not rows:
            raise NotFound(f"no token with id {token_id}")
        if len(rows) > 1:  # raising rolls the deletes back
            raise InvalidInput(f"token id {token_id} matches {len(rows)} tokens: give more digits")
        await conn.execute("SELECT pg_notify($1, $2)", REVOKED_CHANNEL, rows[0]["canvas"])
    return _info(rows[0])
