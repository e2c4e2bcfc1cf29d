"""Route matching: most specific wins, wildcards, ambiguity fails at start-up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import Canvas
from runtime.routing import Router, parse_route
from trace_store.errors import RoutingError


def _router(*routes: str) -> Router[str]:
    router: Router[str] = Router()
    for route in routes:
        router.add("GET", route, route)
    return router


def test_literal_beats_param_beats_wildcard() -> None:
    router = _router("/users/:id", "/users/me", "/users/*rest")
    assert router.match("GET", "/users/me") == ("/users/me", {})
    assert router.match("GET", "/users/42") == ("/users/:id", {"id": "42"})
    assert router.match("GET", "/users/42/posts") == ("/users/*rest", {"rest": "42/posts"})


def test_specificity_is_compared_left_to_right_with_backtracking() -> None:
    router = _router("/a/:x/c", "/a/b/:y")
    assert router.match("GET", "/a/b/c") == ("/a/b/:y", {"y": "c"})
    assert router.match("GET", "/a/z/c") == ("/a/:x/c", {"x": "z"})
    # /a/b/d: the literal branch fails deeper down, so the param branch is tried.
    router.add("GET", "/a/b/c/d", "deep")
    assert router.match("GET", "/a/b/c") == ("/a/b/:y", {"y": "c"})


def test_wildcard_matches_zero_or_more_segments() -> None:
    router = _router("/files/*path")
    assert router.match("GET", "/files") == ("/files/*path", {"path": ""})
    assert router.match("GET", "/files/a/b") == ("/files/*path", {"path": "a/b"})


def test_method_is_part_of_the_match() -> None:
    router = _router("/x")
    assert router.match("POST", "/x") is None
    assert router.match("GET", "/y") is None


@pytest.mark.parametrize(
    ("first", "second"),
    [("/u/:id", "/u/:name"), ("/f/*a", "/f/*b"), ("/same", "/same"), ("/", "/")],
)
def test_ambiguous_routes_fail(first: str, second: str) -> None:
    router = _router(first)
    with pytest.raises(RoutingError, match="ambiguous"):
        router.add("GET", second, "again")


@pytest.mark.parametrize(
    "route", ["no-slash", "/a/*w/b", "/a/:", "/a/:x/:x", "/a/b:c", "/:1bad", 42]
)
def test_malformed_routes_fail(route: object) -> None:
    with pytest.raises(RoutingError):
        parse_route(route)  # type: ignore[arg-type]


def test_canvas_rejects_bad_names_ids_and_duplicates() -> None:
    with pytest.raises(RoutingError):
        Canvas("Bad Name")
    canvas = Canvas("ok")

    @canvas.http("GET", "/a")
    def first(request: object) -> str:
        return "a"

    with pytest.raises(RoutingError, match="duplicate handler id"):
        canvas.http("GET", "/b", id="first")(first)
    with pytest.raises(RoutingError, match="invalid handler id"):
        canvas.http("GET", "/c", id="Has Space")(first)
    with pytest.raises(RoutingError, match="ambiguous"):
        canvas.http("GET", "/a", id="other")(first)
    with pytest.raises(RoutingError, match="unsupported HTTP method"):
        canvas.http("BREW", "/d", id="teapot")(first)


segment = st.text(alphabet="abcxyz", min_size=1, max_size=3)


@given(st.lists(st.lists(segment, min_size=1, max_size=4), min_size=1, max_size=8, unique_by=tuple))
def test_every_literal_route_matches_itself(paths: list[list[str]]) -> None:
    router: Router[str] = Router()
    for parts in paths:
        router.add("GET", "/" + "/".join(parts), "/".join(parts))
    for parts in paths:
        assert router.match("GET", "/" + "/".join(parts)) == ("/".join(parts), {})
