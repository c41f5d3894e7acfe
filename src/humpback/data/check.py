"""Files under a folder that DVC cannot hash: found before `dvc repro` trips over them.

DVC hashes a stage's dependency folder before any project code runs, so a dangling symbolic link
(a documentation tree copied with ``cp -r`` keeps links into /usr/share/javascript, say) or a file
this user cannot read fails ``dvc repro`` with one bare ``[Errno 2]``. :func:`unhashable` lists
every such entry, with the reason, so ``humpback check`` can name them all at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def unhashable(root: str | Path) -> list[Problem]:
    """Dangling links, unreadable files and unreadable folders under ``root`` (following links
    to folders, as DVC does), in path order; an empty list where DVC can hash every file."""
    root = Path(root)
    if not root.exists():
        return [Problem(root, "does not exist" + (" (a dangling link)" if root.is_symlink() else ""))]
    if root.is_file():
        return _file_problems(root)
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()

    def unreadable_dir(err: OSError) -> None:
        problems.append(Problem(Path(err.filename), f"folder cannot be read ({err.strerror})"))

    for folder, dirs, files in os.walk(root, onerror=unreadable_dir, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a link back up the tree: walked once
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in sorted(files):  # a dangling link is listed here, whatever it pointed to
            problems.extend(_file_problems(Path(folder) / name))
    return sorted(problems, key=lambda p: str(p.path))


def _file_problems(path: Path) -> list[Problem]:
    if path.is_symlink() and not path.exists():
        return [Problem(path, f"dangling link to {os.readlink(path)}")]
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return [Problem(path, f"cannot be read ({exc.strerror})")]
    return []
