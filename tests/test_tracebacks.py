"""Exceptions as traces keep them: formatted once, bounded in frames, chain and size."""

from __future__ import annotations

import traceback

import pytest

from trace_store.document import tracebacks
from trace_store.record import ErrorInfo


def _recursion_error() -> RecursionError:
    def recurse(n: int) -> int:
        return recurse(n + 1)

    try:
        recurse(0)
    except RecursionError as exc:
        return exc
    raise AssertionError("no recursion error")


def test_a_recursion_error_keeps_the_ends_of_its_stack_and_counts_the_middle() -> None:
    exc = _recursion_error()
    depth = len(traceback.extract_tb(exc.__traceback__))
    assert depth > 500
    text = ErrorInfo.of(exc).traceback
    omitted = depth - tracebacks.HEAD_FRAMES - tracebacks.TAIL_FRAMES
    assert f"[... {omitted} frames omitted ...]" in text
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("RecursionError: maximum recursion depth exceeded\n")
    assert "_recursion_error" in text  # the outermost frame is kept
    assert len(text) < 4_000


def test_one_exception_recorded_by_many_calls_is_formatted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exc = _recursion_error()
    formatted: list[BaseException] = []
    real = tracebacks.format_bounded

    def counting(e: BaseException) -> str:
        formatted.append(e)
        return real(e)

    monkeypatch.setattr(tracebacks, "format_bounded", counting)
    infos = {id(ErrorInfo.of(exc)) for _ in range(495)}
    assert len(infos) == 1
    assert formatted == [exc]


def test_chains_and_messages_are_bounded() -> None:
    def chained(depth: int) -> BaseException:
        try:
            if depth == 0:
                raise ValueError("x" * 100_000)
            try:
                raise chained(depth - 1)
            except BaseException as inner:
                raise KeyError(depth) from inner
        except BaseException as exc:
            return exc

    text = tracebacks.format_bounded(chained(10))
    assert text.startswith("[8 earlier chained exception(s) omitted]\n")
    assert text.count("The above exception was the direct cause") == tracebacks.MAX_CHAIN - 1
    assert len(text) <= tracebacks.MAX_CHARS


def test_a_short_traceback_reads_like_pythons_own() -> None:
    def no_carets(text: str) -> list[str]:  # Python 3.11's ^^^ position lines are left out
        return [line for line in text.splitlines() if line.strip(" ^~")]

    with pytest.raises(KeyError) as caught:
        {}["missing"]
    exc = caught.value
    ours = tracebacks.format_bounded(exc)
    assert no_carets(ours) == no_carets("".join(traceback.format_exception(exc)))
