"""Secrets never reach a stored trace (SPEC §12): headers by name; query parameters and
JSON or form body fields by name at any depth; request and response bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from runtime import Canvas, Request, Response
from tests.harness import serve
from trace_store.document import redaction
from trace_store.document.redaction import DEFAULT_FIELDS, REDACTED, redact_body

login = Canvas("login")


@login.http("POST", "/login")
async def do_login(request: Request) -> Response:
    """Echoes the body and answers with a token, as a login endpoint would."""
    return Response(200, {"echo": request.json(), "access_token": "tok-SECRET-out"})


SECRET_HEADERS = {
    "Authorization": "Bearer h-SECRET-1",
    "Cookie": "sid=h-SECRET-2",
    "Proxy-Authorization": "Basic h-SECRET-3",
    "X-Api-Key": "h-SECRET-4",
    "X-Auth-Token": "h-SECRET-5",
}
BODY = {
    "user": "ada",
    "password": "b-SECRET-1",
    "profile": {"settings": [{"api_key": "b-SECRET-2"}, {"Client_Secret": "b-SECRET-3"}]},
    "note": "the word password in a value is not a field",
}


async def test_a_request_full_of_secrets_is_stored_without_any(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"login": login}) as server:
        async with server.http.post(
            server.gateway + "/login?password=q-SECRET-1&page=2&Token=q-SECRET-2",
            json=BODY,
            headers=SECRET_HEADERS,
        ) as response:
            assert response.status == 200  # the handler itself saw every value
            assert (await response.json())["echo"]["password"] == "b-SECRET-1"
        await server.flush()
        token = await server.token("login")
        _, listed = await server.api("/api/v1/canvases/login/handlers/do_login/traces", token)
        trace_id = listed["traces"][0]["trace_id"]
        doc = await server.trace_doc("login", token, trace_id)
        raw = (tmp_path / "objects").rglob(f"{trace_id}*")
        stored = orjson.dumps(doc) + b"".join(p.read_bytes() for p in raw)
    assert b"SECRET" not in stored
    headers = {name.lower(): value for name, value in doc["input"]["headers"]}
    assert all(headers[name.lower()] == REDACTED for name in SECRET_HEADERS)
    assert doc["input"]["query"] == {
        "password": [REDACTED],
        "page": ["2"],
        "Token": [REDACTED],
    }
    body = orjson.loads(doc["input"]["body"]["data"])
    assert body == {
        "user": "ada",
        "password": REDACTED,
        "profile": {"settings": [{"api_key": REDACTED}, {"Client_Secret": REDACTED}]},
        "note": "the word password in a value is not a field",
    }
    answer = orjson.loads(doc["result"]["body"]["data"])
    assert answer["access_token"] == REDACTED
    assert answer["echo"]["password"] == REDACTED


def test_form_bodies_and_unparsable_json_are_redacted_too() -> None:
    form = b"user=ada&password=f-SECRET&remember=1"
    assert redact_body(form, "form", DEFAULT_FIELDS) == (
        b"user=ada&password=%5Bredacted%5D&remember=1"
    )
    broken = b'{"user": "ada", "token": "j-SECRET", "apikey": 12345, "x": ['
    out = redact_body(broken, "json", DEFAULT_FIELDS)
    assert b"SECRET" not in out
    assert b"12345" not in out
    assert out.startswith(b'{"user": "ada", "token": "[redacted]"')


def test_an_innocent_body_keeps_its_exact_bytes() -> None:
    body = b'{ "user" :  "ada",\n  "tokens_left": 3 }'
    assert redact_body(body, "json", DEFAULT_FIELDS) is body
    assert redact_body(b'{"password": "x"}', None, DEFAULT_FIELDS) == b'{"password": "x"}'


def test_content_types_that_are_json_or_form() -> None:
    assert redaction.body_kind("application/json; charset=utf-8") == "json"
    assert redaction.body_kind("application/vnd.api+json") == "json"
    assert redaction.body_kind("application/x-www-form-urlencoded") == "form"
    assert redaction.body_kind("text/plain") is None
    assert redaction.body_kind(None) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "b", "Password", "TOKEN", "api_key"]), inner, max_size=4
        )
    ),
    max_leaves=30,
)


def _secret_values(value: Any) -> list[Any]:
    found = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key.lower() in DEFAULT_FIELDS:
                    found.append(item)
                else:
                    stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
    return found


@given(json_values)
def test_no_secret_field_keeps_its_value_at_any_depth(value: Any) -> None:
    out = orjson.loads(redact_body(orjson.dumps(value), "json", DEFAULT_FIELDS))
    assert all(found == REDACTED for found in _secret_values(out))
    assert len(_secret_values(out)) == len(_secret_values(value))


def test_a_very_deep_document_is_redacted_without_recursion() -> None:
    # orjson parses up to 1,024 levels; the walk itself is iterative.
    text = b'{"w":' + b"[" * 1000 + b'{"password":"d-SECRET"}' + b"]" * 1000 + b"}"
    assert b"SECRET" not in redact_body(text, "json", DEFAULT_FIELDS)
