"""Editor tokens from the command line: create, list (never the token itself), revoke;
a revoked token is refused at once by a running server, though it had cached it."""

from __future__ import annotations

from pathlib import Path

from tests.canvases import blog, shop
from tests.cli_support import assert_one_line_error, strata
from tests.harness import serve
from trace_store.db.tokens import hash_token


async def test_create_list_and_revoke_a_token_refused_at_once(
    database_url: str, tmp_path: Path
) -> None:
    env = {"STRATA_DATABASE_URL": database_url}
    async with serve(database_url, tmp_path, {"shop": shop, "blog": blog}) as server:
        code, out, _ = await strata("token", "create", "--canvas", "shop", env=env)
        assert code == 0
        token = out.strip()
        other = await server.token("blog")
        path = "/api/v1/canvases/shop/handlers"
        assert (await server.api(path, token))[0] == 200  # now cached by the server

        code, out, _ = await strata("token", "list", env=env)
        assert code == 0
        assert token not in out
        token_id = hash_token(token).hex()[:12]
        rows = [line.split() for line in out.splitlines()[1:]]
        assert [token_id, "shop"] in [row[:2] for row in rows]
        assert {row[1] for row in rows} == {"shop", "blog"}
        code, out, _ = await strata("token", "list", "--canvas", "blog", env=env)
        assert [line.split()[1] for line in out.splitlines()[1:]] == ["blog"]

        code, out, _ = await strata("token", "revoke", token_id, env=env)
        assert (code, out.strip()) == (0, f"revoked {token_id} (canvas shop)")
        status, body = await server.api(path, token)
        assert status == 401, body
        assert (await server.api("/api/v1/canvases/blog/handlers", other))[0] == 200

        code, _, err = await strata("token", "revoke", token_id, env=env)
        assert_one_line_error(code, err, f"no token with id {token_id}")
        code, _, err = await strata("token", "revoke", "xyz", env=env)
        assert_one_line_error(code, err, "expected 8 or more hex digits")


async def test_an_ambiguous_id_revokes_nothing(database_url: str) -> None:
    import asyncpg
    import pytest

    from trace_store.db import tokens
    from trace_store.errors import InvalidInput

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        for tail in (b"\x01", b"\x02"):
            await pool.execute(
                "INSERT INTO editor_tokens (token_hash, canvas) VALUES ($1, 'shop')",
                b"\xab\xcd\xef\x01" + tail * 28,
            )
        with pytest.raises(InvalidInput, match="matches 2 tokens"):
            await tokens.revoke_token(pool, "abcdef01")
        assert len(await tokens.list_tokens(pool, "shop")) == 2
        revoked = await tokens.revoke_token(pool, "abcdef0101")
        assert (revoked.id, revoked.canvas) == ("abcdef010101", "shop")
        assert len(await tokens.list_tokens(pool)) == 1
    finally:
        await pool.close()
