"""The repository stands alone: nothing in it reads or links a path outside it.

`make lint` runs this over every file git tracks or would track. It fails on
- any mention of the hand-over folder beside the checkout (``../`` + ``shared``), or a
  string literal that starts with that folder's name as a path component (how a test
  once reached it, through ``Path(__file__).parents[2]``);
- a relative Markdown link whose target leaves the repository or does not exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# Written so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./+shared|[\"'/]shared(?:/|[\"'])")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXTERNAL = ("http://", "https://", "mailto:", "#")


def tracked_files(root: Path) -> list[Path]:
    """Files git tracks, plus new ones it does not ignore."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout
    return [root / name for name in listing.decode().split("\0") if name]


def problems(root: Path, files: list[Path]) -> list[str]:
    """Every reference that leaves ``root``, as ``path:line: what``."""
    found: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary data or a file deleted but not yet staged
        rel = path.relative_to(root)
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{rel}:{number}: refers to the folder beside the repository")
            if path.suffix != ".md":
                continue
            for target in LINK.findall(line):
                if target.startswith(EXTERNAL):
                    continue
                resolved = (path.parent / target.split("#", 1)[0]).resolve()
                if not resolved.is_relative_to(root.resolve()):
                    found.append(f"{rel}:{number}: link {target!r} leaves the repository")
                elif not resolved.exists():
                    found.append(f"{rel}:{number}: link {target!r} points at nothing")
    return found


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    found = problems(root, tracked_files(root))
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
