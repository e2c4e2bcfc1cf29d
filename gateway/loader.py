"""Load canvases named ``MODULE:ATTR``, as ``--app`` and ``STRATA_APP`` give them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from runtime.canvas import Canvas
from trace_store.errors import ConfigError


def load_canvas(spec: str) -> Canvas:
    """Import ``MODULE:ATTR`` and return the :class:`Canvas` it names."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"STRATA_APP (--app): expected MODULE:ATTR, got {spec!r}")
    # Like other app servers, resolve modules from the working directory first.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"STRATA_APP (--app): cannot import {module_name!r}: {exc}") from exc
    found = getattr(module, attr, None)
    if not isinstance(found, Canvas):
        raise ConfigError(f"STRATA_APP (--app): {spec!r} is not a runtime.Canvas")
    return found


def load_canvases(specs: tuple[str, ...] | list[str]) -> dict[str, Canvas]:
    """Every canvas by name; two canvases with one name fail."""
    canvases: dict[str, Canvas] = {}
    for spec in specs:
        canvas = load_canvas(spec)
        if canvas.name in canvases:
            raise ConfigError(f"STRATA_APP (--app): two canvases are named {canvas.name!r}")
        canvases[canvas.name] = canvas
    return canvases
