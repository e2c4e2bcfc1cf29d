"""Every import points down: ``gateway`` → ``runtime`` → ``trace_store``, and
``lifecycle_policies`` → ``trace_store``; nothing imports ``gateway``.

`make lint` runs this over the four packages. Every import counts, at module level,
inside a function or under ``TYPE_CHECKING``: a type-only import upwards still ties a
lower package to a higher one. ``tests/`` and ``bench/`` may import anything.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: What each package may import of the others.
ALLOWED: dict[str, frozenset[str]] = {
    "gateway": frozenset({"runtime", "trace_store", "lifecycle_policies"}),
    "runtime": frozenset({"trace_store"}),
    "lifecycle_policies": frozenset({"trace_store"}),
    "trace_store": frozenset(),
}


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def problems(root: Path) -> list[str]:
    """Every import that points up or sideways, as ``path:line: what``."""
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for line, target in imported(tree):
                if target in ALLOWED and target != package and target not in allowed:
                    rel = path.relative_to(root)
                    found.append(f"{rel}:{line}: {package} imports {target} (imports point down)")
    return found


def main() -> int:
    found = problems(Path(__file__).resolve().parent.parent)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
