"""Load canvases as ``--app`` and ``STRATA_APP`` name them: ``MODULE:ATTR`` or
``PATH.py:ATTR``.

A spec whose module part contains a ``/`` or ends in ``.py`` is a file path (relative
to the working directory, or absolute); anything else is a module name, resolved from
the working directory first. Every failure is one :class:`ConfigError` naming
``STRATA_APP (--app)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.canvas import Canvas
from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from types import ModuleType

SETTING = "STRATA_APP (--app)"


def is_file_spec(target: str) -> bool:
    """Whether the module part of a spec names a file rather than a module."""
    return "/" in target or os.sep in target or target.endswith(".py")


def failure_place(exc: BaseException, path: Path | None) -> tuple[str, int | None]:
    """``(file, line)`` of an import's failure: a syntax error's own position, else the
    deepest frame in ``path`` (or, for a module, the last frame outside importlib);
    ``("", None)`` when no frame says."""
    if isinstance(exc, SyntaxError):
        return exc.filename or "", exc.lineno
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if (Path(frame.filename) == path if path else "importlib" not in frame.filename)
        and frame.filename != __file__
    ]
    return (frames[-1].filename, frames[-1].lineno) if frames else ("", None)


def _where(exc: BaseException, path: Path | None) -> str:
    file, line = failure_place(exc, path)
    return f"{file}:{line}" if file else ""


def _import_failure(what: str, exc: Exception, path: Path | None) -> ConfigError:
    where = _where(exc, path)
    detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    if isinstance(exc, SyntaxError):
        kind = "syntax error"
    elif isinstance(exc, ImportError):
        kind = "import error"
    else:  # the module's own code raised while it was imported
        kind = type(exc).__name__
    at = f" at {where}" if where else ""
    return ConfigError(f"{SETTING}: cannot import {what}: {kind}{at}: {detail}")


def _import_module(name: str) -> ModuleType:
    # Like other app servers, resolve modules from the working directory first.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        raise _import_failure(repr(name), exc, None) from exc
    except ImportError as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (name == missing or name.startswith(missing + ".")):
            raise ConfigError(f"{SETTING}: cannot import {name!r}: {exc}") from exc
        raise _import_failure(repr(name), exc, None) from exc
    except TypeError as exc:
        if name.startswith("."):  # a relative name such as ".shop"
            raise ConfigError(f"{SETTING}: cannot import {name!r}: {exc}") from exc
        raise _import_failure(repr(name), exc, None) from exc
    except Exception as exc:
        raise _import_failure(repr(name), exc, None) from exc


def _import_file(target: str) -> ModuleType:
    path = Path(target)
    if path.suffix != ".py":
        raise ConfigError(f"{SETTING}: {target!r} is not a .py file (expected PATH.py:ATTR)")
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"{SETTING}: no file {target!r} ({path})")
    name = path.stem
    # One module per file and name, as an import would give: loading a file again (or
    # importing it by name from a sibling) returns the module already there.
    known = sys.modules.get(name)
    if known is not None:
        known_file = getattr(known, "__file__", None)
        if known_file and Path(known_file).resolve() == path:
            return known
        raise ConfigError(
            f"{SETTING}: {target!r} would be module {name!r}, which is already"
            f" {known_file or 'a built-in module'}; rename the file"
        )
    # Its directory goes first on the path, so the file's sibling imports resolve as
    # they do when it is run as a script.
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{SETTING}: cannot import {target!r}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import does: dataclasses, pickling and
    # ``typing.get_type_hints`` look the module up by name while it executes.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a syntax, import or any other error of the file's own
        del sys.modules[name]
        raise _import_failure(repr(target), exc, path) from exc
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_canvas(spec: str) -> Canvas:
    """Import ``MODULE:ATTR`` or ``PATH.py:ATTR`` and return the :class:`Canvas` it names."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"{SETTING}: expected MODULE:ATTR or PATH.py:ATTR, got {spec!r}")
    module = _import_file(target) if is_file_spec(target) else _import_module(target)
    if not hasattr(module, attr):
        raise ConfigError(f"{SETTING}: {target!r} has no attribute {attr!r}")
    found = getattr(module, attr)
    if not isinstance(found, Canvas):
        what = type(found).__name__
        raise ConfigError(f"{SETTING}: {spec!r} is not a runtime.Canvas (its type is {what})")
    return found


def load_canvases(specs: tuple[str, ...] | list[str]) -> dict[str, Canvas]:
    """Every canvas by name; two canvases with one name fail."""
    canvases: dict[str, Canvas] = {}
    for spec in specs:
        canvas = load_canvas(spec)
        if canvas.name in canvases:
            raise ConfigError(f"{SETTING}: two canvases are named {canvas.name!r}")
        canvases[canvas.name] = canvas
    return canvases


def canvas_module(canvas: Canvas) -> ModuleType | None:
    """The module that defines ``canvas`` (where its handlers live), if it has a file."""
    for handler in canvas.handlers.values():
        module = sys.modules.get(handler.function.__module__)
        if module is not None and getattr(module, "__file__", None):
            return module
    return None


def reload_canvas(module: ModuleType, name: str) -> Canvas:
    """Execute ``module``'s file again into a fresh module and return its canvas called
    ``name``. The fresh module replaces the old in ``sys.modules`` only once it has
    loaded; on any failure the old one stays, and the exception propagates."""
    spec = module.__spec__
    if spec is None or spec.loader is None:
        raise ConfigError(f"{SETTING}: module {module.__name__!r} cannot be reloaded")
    fresh = importlib.util.module_from_spec(spec)
    sys.modules[module.__name__] = fresh  # as an import does, while it executes
    try:
        spec.loader.exec_module(fresh)
        found = [v for v in vars(fresh).values() if isinstance(v, Canvas) and v.name == name]
        if len(found) != 1:
            raise ConfigError(f"{module.__name__} no longer defines one canvas named {name!r}")
    except BaseException:
        sys.modules[module.__name__] = module
        raise
    return found[0]
