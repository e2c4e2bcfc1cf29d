"""A handler's and the user functions' current source, as the editor shows it (SPEC §14).

Files are named relative to their module's root (``examples/demo.py`` for the module
``examples.demo``), never by the server's absolute path; line numbers are the file's own.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from trace_store.errors import NotFound

if TYPE_CHECKING:
    from types import CodeType

    from runtime.canvas import Canvas
    from trace_store.types import JSONObject


def relative_file(module: str, path: str) -> str:
    """``path`` of ``module`` relative to the module's root: ``pkg/mod.py`` for
    ``pkg.mod``, ``pkg/__init__.py`` for a package ``pkg``."""
    parts = module.split(".")
    name = PurePath(path).name
    if name == "__init__.py":
        return "/".join([*parts, name])
    return "/".join([*parts[:-1], name])


@functools.lru_cache(maxsize=4096)
def source_of(code: CodeType) -> tuple[list[str], int] | None:
    """The source lines of ``code`` and the first one's number, read once per code
    object (a code object's lines never change; a reload makes new code objects, and
    the explain and source routes then read the same text); ``None`` without a source."""
    try:
        return inspect.getsourcelines(code)
    except (OSError, TypeError):
        return None


def describe(function: Any) -> JSONObject:
    """``{module, file, first_line, lines, sha256}`` of ``function``'s current source."""
    target = inspect.unwrap(function)
    module = getattr(target, "__module__", None) or ""
    found = source_of(target.__code__)
    if found is None:
        raise NotFound(f"the source of {module}.{target.__qualname__} is not available")
    lines, first = found
    path = target.__code__.co_filename
    text = "".join(lines)
    return {
        "module": module,
        "file": relative_file(module, path) if path else "",
        "first_line": first,
        "lines": [line.rstrip("\r\n") for line in lines],
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def handler_source(canvas: Canvas, handler_id: str) -> JSONObject:
    """SPEC §14's ``source`` response for one handler of ``canvas``."""
    handler = canvas.handlers.get(handler_id)
    if handler is None:
        raise NotFound(f"canvas {canvas.name!r} has no handler {handler_id!r}")
    functions = [
        {"name": name, **describe(function.raw), "parameters": list(function.signature.parameters)}
        for name, function in sorted(canvas.functions.items())
    ]
    return {"handler_id": handler.id, **describe(handler.function), "functions": functions}
