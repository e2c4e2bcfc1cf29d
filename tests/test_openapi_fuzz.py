"""Fuzz a real ``strata serve`` from the OpenAPI document it serves (schemathesis).

One ``strata serve`` process per mode, on the demo canvas, with traces, patches and an
unmatched request in it. Schemathesis loads ``GET /api/v1/openapi.json`` from that
process and runs all its phases (examples, coverage, fuzzing, stateful) over every
operation: once with a valid token, once without one (random credentials instead).
Every response must be a documented status with a documented shape, and none a 5xx.
(Schemathesis leaves out the operation that served it the document: loading it, with
no token, is that operation's test.)

Random values almost never name anything, so three hints get the fuzzer into the
handlers instead of bouncing off 400s and 404s:

- a hook swaps real values (the canvas, its handlers, traces, unmatched requests,
  functions, a signed object URL, the live event-stream epoch) into each parameter of
  a valid case, independently, about half of the time;
- a dictionary of classic hostile strings (Unicode digits, thousands of digits, NUL,
  the largest UUID, overlong names, non-ASCII) is mixed into string parameters;
- without a token, the ``Authorization`` header carries random Latin-1 credentials.

The run drives schemathesis's engine (what ``schemathesis run`` uses): its pytest
integration (``schemathesis.pytest.from_fixture``) does not run under pytest 9.
"""

from __future__ import annotations

import collections
import dataclasses
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import pytest
import schemathesis
import zstandard
from hypothesis import strategies as st
from schemathesis import engine
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import events

from examples.demo import canvas as demo
from tests.test_serve_process import strata_serve

#: Fuzzing examples per operation (the examples, coverage and stateful phases add theirs).
MAX_EXAMPLES = 50
API = "/api/v1/canvases/{canvas}"
EVENTS = f"{API}/events"
FUNCTION_RUN = f"{API}/traces/{{trace_id}}/functions/{{function}}/run"
#: Operations a valid token must get a 2xx from at least once: proof that the fuzzer
#: reached the handlers.
MUST_SUCCEED = {
    "GET /api/v1/canvases",
    f"GET {API}/handlers",
    f"GET {API}/handlers/{{handler_id}}/traces",
    f"GET {API}/traces/{{trace_id}}",
    f"POST {API}/traces/{{trace_id}}/rerun",
    f"POST {FUNCTION_RUN}",
    f"GET {API}/unmatched",
    f"GET {API}/unmatched/{{trace_id}}",
    f"GET {EVENTS}",
    "GET /objects/{key}",
    "HEAD /objects/{key}",
    "GET /static/{path}",
}
#: Strings that broke parsers before: Unicode digits that ``isdigit()`` accepts and
#: ``int()`` refuses, a UUID whose time field lies past year 9999, NUL, a name longer
#: than a filesystem allows, non-ASCII, traversal.
HOSTILE = [
    "²",
    "١٢٣",
    "0" * 40 + "1",
    "-1",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "FFFFFFFF-FFFF-7FFF-BFFF-FFFFFFFFFFFF",
    "\x00",
    "x" * 300,
    "é",
    "..",
    "a/../../b",
]
#: For the numbers the server parses: past ``int()``'s 4,300-digit limit. Bound to those
#: parameters only, since two of them in one URL would pass the HTTP layer's 8 KiB line.
DIGITS = ["9" * 5000, "²", "1" * 19, "0"]
#: A case's path parameters, query and headers as generated.
Generated = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
STATIC_FILES = ("index.html", "app.js", "style.css", "vendor/fzstd.js")


@dataclasses.dataclass
class Seeded:
    """A running server and the real values in it."""

    editor: str
    token: str
    handlers: list[str]
    traces: list[str]
    unmatched: list[str]
    #: ``(key, expires, sig)`` of a signed base-object URL.
    signed: tuple[str, str, str]
    #: The event stream's current epoch (ids are ``<epoch>-<seq>``).
    epoch: str


def _call(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return status, raw


def _until(what: str, probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def _epoch(url: str, token: str) -> str:
    """The epoch of the event stream: every stream starts with ``retry:`` and its id."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        first = response.read1(4096).decode()
    (line,) = (line for line in first.splitlines() if line.startswith("id: "))
    return line.removeprefix("id: ").rsplit("-", 1)[0]


def _seed(printed: dict[str, Any]) -> Seeded:
    """Traces of three handlers, a rerun and a function run on one, an unmatched request."""
    gateway, editor = printed["gateway"], printed["editor"]
    token = printed["tokens"]["demo"]
    api = f"{editor}/api/v1/canvases/demo"
    assert _call("GET", f"{gateway}/users/7?verbose=1")[0] == 200
    assert _call("GET", f"{gateway}/hello")[0] == 200
    order = {"items": [{"sku": "tea", "qty": 2, "price": 3.5}]}
    assert _call("POST", f"{gateway}/orders", body=order)[0] == 201
    assert _call("GET", f"{gateway}/no/such/page")[0] == 404

    def traces_of(handler: str) -> list[str]:
        status, body = _call("GET", f"{api}/handlers/{handler}/traces", token)
        assert status == 200, body
        return [t["trace_id"] for t in body["traces"]]

    handlers = ("get_user", "create-order", "hello")
    _until("the traces", lambda: all(traces_of(h) for h in handlers))
    traces = [t for h in handlers for t in traces_of(h)]
    status, patch = _call("POST", f"{api}/traces/{traces[0]}/rerun", token)
    assert status == 201, patch
    run = {"args": [10, 0.2]}
    status, patch = _call("POST", f"{api}/traces/{traces[0]}/functions/add_tax/run", token, run)
    assert status == 201, patch
    unmatched = _until(
        "the unmatched request",
        lambda: [u["trace_id"] for u in _call("GET", f"{api}/unmatched", token)[1]["unmatched"]],
    )
    status, manifest = _call("GET", f"{api}/traces/{traces[0]}", token)
    assert status == 200, manifest
    url = urlsplit(manifest["base"]["url"])
    query = parse_qs(url.query)
    signed = (unquote(url.path.removeprefix("/objects/")), query["expires"][0], query["sig"][0])
    status, body = _call("GET", f"{api}/handlers", token)
    assert status == 200, body
    return Seeded(
        editor,
        token,
        [h["id"] for h in body["handlers"]],
        traces,
        unmatched,
        signed,
        _epoch(f"{api}/events", token),
    )


@pytest.fixture(params=["token", "anonymous"])
def fuzz_mode(request: pytest.FixtureRequest) -> str:
    """Fuzz once with a valid token, once with none."""
    return str(request.param)


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Iterator[Seeded]:
    """A real ``strata serve`` on the demo canvas (local store, the test's Postgres),
    seeded. ``strata_serve`` fails, never skips, when the server does not come up."""
    env = {
        "STRATA_DATABASE_URL": database_url,
        "STRATA_DATA_DIR": str(tmp_path),
        "STRATA_STORE": "",
        # Configured, so that every credential is also compared with it.
        "STRATA_ADMIN_TOKEN": "admin-token-not-sent-by-the-fuzzer",
    }
    with strata_serve(["--app", "examples.demo:canvas", "--print-dev-token"], env) as printed:
        yield _seed(printed)


def _config(seeded: Seeded, mode: str) -> schemathesis.Config:
    auth = f'[auth.openapi.bearerAuth]\nbearer = "{seeded.token}"\n' if mode == "token" else ""
    return schemathesis.Config.from_str(
        f"""
seed = 20240512
request-timeout = 10
[generation]
max-examples = {MAX_EXAMPLES}
database = "none"
[generation.dictionaries.string]
dictionary = "hostile"
probability = 0.15
[dictionaries.hostile]
values = {orjson.dumps(HOSTILE).decode()}
[dictionaries.digits]
values = {orjson.dumps(DIGITS).decode()}
# More often where the server parses the text itself: numbers, file names, signatures.
[parameters]
"query.limit" = {{ dictionary = "digits", probability = 0.4 }}
"query.expires" = {{ dictionary = "digits", probability = 0.4 }}
"header.Last-Event-ID" = {{ dictionary = "digits", probability = 0.4 }}
"query.sig" = {{ dictionary = "hostile", probability = 0.4 }}
"path.key" = {{ dictionary = "hostile", probability = 0.4 }}
"path.path" = {{ dictionary = "hostile", probability = 0.4 }}
{auth}
# The event stream never ends: read what arrives in the first half second, then cut it
# (so each stream costs half a second: fewer of them).
[[operations]]
include-path = "{EVENTS}"
request-timeout = 0.5
generation.max-examples = 15
# Whether the args fit the function's signature (and whether a tagged value is well
# formed) is up to the canvas, not the document: a schema-valid body may get a 400.
[[operations]]
include-path = "{FUNCTION_RUN}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "413"]
"""
    )


def _real_values(seeded: Seeded, mode: str) -> Any:
    """A ``flatmap_case`` hook: real values into valid cases, each parameter on its own."""
    functions = sorted(demo.functions)
    key, expires, sig = seeded.signed
    # Random Latin-1 credentials, half of them with the prefix that gets a token looked up.
    text = st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=60,
    )
    credentials = text | text.map(lambda t: "strata_" + t)

    def real(path: str, name: str, pick: int) -> str | None:
        choices: dict[str, Any] = {
            "canvas": ["demo"],
            "handler_id": seeded.handlers,
            "trace_id": seeded.unmatched if "/unmatched/" in path else seeded.traces,
            "function": functions,
            "key": [key],
            "path": STATIC_FILES,
            "before": seeded.traces,
            "expires": [expires],
            "sig": [sig],
        }
        values = choices.get(name)
        return None if values is None else values[pick % len(values)]

    def apply(case: Any, generated: Generated, coins: list[bool], pick: int, token: str) -> Any:
        # Start from what was generated: Hypothesis may draw again for the same case.
        path_parameters, query, headers = (dict(c) for c in generated)
        path, meta, flips = case.operation.path, case.meta, iter(coins)

        def negative(location: ParameterLocation) -> bool:
            return meta is not None and meta.is_negative_at(location)

        valid_url = not negative(ParameterLocation.PATH) and not negative(ParameterLocation.QUERY)
        if path == "/objects/{key}" and valid_url and next(flips, False):
            # A signed URL is its key, expiry and signature together, or it is nothing.
            path_parameters = {"key": key}
            query = {**query, "expires": expires, "sig": sig}
        else:
            for values, location in (
                (path_parameters, ParameterLocation.PATH),
                (query, ParameterLocation.QUERY),
            ):
                if negative(location):  # a case meant to be invalid there stays invalid
                    continue
                for name in sorted(values):
                    value = real(path, name, pick)
                    # The canvas three times in four: with only the coin, whether an
                    # operation met a valid canvas at all came down to a few draws.
                    flip = next(flips, False) or (name == "canvas" and next(flips, False))
                    if value is not None and flip:
                        values[name] = value
        if path == EVENTS and next(flips, False):
            # Only an id of the live epoch gets its sequence parsed.
            headers["Last-Event-ID"] = f"{seeded.epoch}-{headers.get('Last-Event-ID', '')}"
        if mode == "anonymous" and next(flips, False):
            headers["Authorization"] = f"Bearer {token}"
        case.path_parameters, case.query, case.headers = path_parameters, query, headers
        return case

    def flatmap_case(context: Any, case: Any) -> Any:
        generated: Generated = (
            dict(case.path_parameters or {}),
            dict(case.query or {}),
            dict(case.headers or {}),
        )
        return st.builds(
            lambda coins, pick, token: apply(case, generated, coins, pick, token),
            st.lists(st.booleans(), min_size=16, max_size=16),
            st.integers(0, 1000),
            credentials,
        )

    return flatmap_case


def after_call(context: Any, case: Any, response: Any) -> None:
    """Decode ``Content-Encoding: zstd`` as a browser does.

    Signed object downloads are the stored zstd bytes, labelled so; this client (urllib3
    without a zstd module) would otherwise validate compressed bytes as JSON.
    """
    if response.headers.get("content-encoding") == ["zstd"] and response.content:
        response.content = zstandard.ZstdDecompressor().decompress(response.content)


@dataclasses.dataclass
class Outcome:
    """What one run saw: statuses per operation, and every failure with a curl command."""

    statuses: dict[str, collections.Counter[int]]
    failures: list[str]
    cases: int = 0

    @property
    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())


def _fuzz(seeded: Seeded, mode: str) -> Outcome:
    served = schemathesis.openapi.from_url(
        f"{seeded.editor}/api/v1/openapi.json", config=_config(seeded, mode)
    )
    served.hook(_real_values(seeded, mode))
    served.hook(after_call)
    outcome = Outcome(collections.defaultdict(collections.Counter), [])
    for event in engine.from_schema(served).execute():
        if isinstance(event, events.ScenarioFinished):
            label = event.recorder.label
            outcome.cases += len(event.recorder.cases)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    outcome.statuses[label][interaction.response.status_code] += 1
            for check in (c for checks in event.recorder.checks.values() for c in checks):
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    text = f"{label}: {failure.title}\n{failure.message}\n"
                    outcome.failures.append((text + check.failure_info.code_sample)[:3000])
        elif isinstance(event, events.NonFatalError):
            outcome.failures.append(f"{event.label}: {event.info.format()}"[:3000])
        elif isinstance(event, events.FatalError):
            raise event.exception
    return outcome


def test_editor_api_survives_fuzzing(seeded: Seeded, fuzz_mode: str) -> None:
    started = time.monotonic()
    outcome = _fuzz(seeded, fuzz_mode)
    print(
        f"\nschemathesis ({fuzz_mode}): {outcome.cases} cases, {outcome.requests} requests,"
        f" {len(outcome.statuses)} operations, {time.monotonic() - started:.1f}s"
    )
    for operation, counts in sorted(outcome.statuses.items()):
        print(f"  {operation}: {dict(sorted(counts.items()))}")
    failures = sorted(set(outcome.failures))
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures[:30])
    if fuzz_mode == "token":
        reached = {
            op for op, counts in outcome.statuses.items() if any(200 <= s < 300 for s in counts)
        }
        assert MUST_SUCCEED - reached == set(), "operations the fuzzer never got a 2xx from"
    else:
        leaked = {
            op
            for op, counts in outcome.statuses.items()
            if "/api/v1/canvases" in op and any(200 <= s < 300 for s in counts)
        }
        assert not leaked, "operations that answered without a valid token"
