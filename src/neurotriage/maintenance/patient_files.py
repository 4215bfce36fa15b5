"""Patient data on disk: the folders neurotriage made for a study, how much they hold, and removing them.

Only paths inside neurotriage's own folders (NEUROTRIAGE_HOME and the web app's data folder) are ever
removed, and only two or more levels down, so never a root or a top folder such as cases/ or dicom/inbox/:
a case folder named on the command line elsewhere is the user's own input.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from neurotriage.config import load_settings
from neurotriage.diagnosis.cases import synthetic_cases_dir
from neurotriage.diagnosis.raw import raw_case_dir
from neurotriage.errors import UserError
from neurotriage.maintenance.sweep import staging_roots
from neurotriage.pacs.inbox import inbox_root
from neurotriage.pacs.pull import pulled_root
from neurotriage.pacs.send import outbox_dir
from neurotriage.web.settings import load_web_settings

MIN_DEPTH = 2  # cases/<ID>, reports/patient-<id>, jobs/<id>: a removable path lies at least this deep in a root
OnFile = Callable[[], None]
UNITS = ("B", "kB", "MB", "GB", "TB")


@dataclass(frozen=True)
class OwnFolders:
    """neurotriage's own folders (resolved): what lies in them may be removed, except the folders that hold
    every study's files of a kind (reports/, cases/, dicom/inbox/, web/jobs/...)."""

    roots: tuple[Path, ...]
    shared: frozenset[Path]

    def hold(self, path: Path) -> bool:
        """Whether `path` lies at least MIN_DEPTH levels inside a root and is not a shared folder."""
        path = Path(path).resolve()
        deep = any(path.is_relative_to(root) and len(path.relative_to(root).parts) >= MIN_DEPTH for root in self.roots)
        return deep and path not in self.shared


def own_folders(data_dir: Path | None = None) -> OwnFolders:
    """NEUROTRIAGE_HOME and the web app's data folder (default: the configured one), with their shared folders."""
    data = data_dir or load_web_settings().data_dir
    roots = dict.fromkeys(folder.resolve() for folder in (load_settings().home, data))
    shared = (*staging_roots(data), inbox_root(), pulled_root(), outbox_dir())
    return OwnFolders(tuple(roots), frozenset(folder.resolve() for folder in shared))


def case_path(case_ref: str, synthetic_seed: int | None) -> Path:
    """Where a study's case lies: the folder its case_ref names, or the synthetic case made for it."""
    path = Path(case_ref)
    if path.is_dir() or synthetic_seed is None:
        return path
    return synthetic_cases_dir() / case_ref


def ingested_case(source: Path) -> Path | None:
    """The BraTS case that ingesting the raw study at `source` wrote to NEUROTRIAGE_HOME/cases, None without one."""
    case = raw_case_dir(source)
    return case if case.is_dir() else None


def ingest_outputs(source: Path) -> list[Path]:
    """What ingesting the raw study at `source` wrote to NEUROTRIAGE_HOME/cases, where it is there: the BraTS
    case and the files named after it (the figure of a failed quality gate)."""
    case = raw_case_dir(source)
    found = [case] if case.is_dir() else []
    if case.parent.is_dir():
        found += sorted(p for p in case.parent.glob(f"{glob.escape(case.name)}_*") if p.is_file())
    return found


def outermost(paths: Iterable[Path]) -> list[Path]:
    """The paths, resolved, without duplicates and without those inside another of them."""
    unique = sorted({Path(p).resolve() for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path.is_relative_to(outer) for outer in kept):
            kept.append(path)
    return sorted(kept)


def _files(path: Path) -> Iterator[Path]:
    """Every file and link under `path` (the path itself when it is one); links are never followed."""
    if path.is_symlink() or path.is_file():
        yield path
        return
    for root, folders, names in os.walk(path):
        for name in names:
            yield Path(root, name)
        for name in folders:
            if os.path.islink(os.path.join(root, name)):
                yield Path(root, name)


def tree_stats(paths: Iterable[Path]) -> tuple[int, int]:
    """How many files the paths hold, and their bytes."""
    files = size = 0
    for path in paths:
        for file in _files(Path(path)):
            files, size = files + 1, size + _size(file)
    return files, size


def _size(file: Path) -> int:
    try:
        return file.lstat().st_size
    except FileNotFoundError:
        return 0


def remove_paths(paths: Iterable[Path], on_file: OnFile | None = None) -> tuple[int, int]:
    """Remove every file under the paths (calling `on_file` after each), then their folders; returns how many
    files went and their bytes. A path already gone is skipped; one that cannot be removed is a UserError."""
    files = size = 0
    for path in paths:
        path = Path(path)
        for file in _files(path):
            nbytes = _size(file)
            try:
                file.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise UserError(f"{file}: cannot remove it ({exc.strerror})") from None
            files, size = files + 1, size + nbytes
            if on_file is not None:
                on_file()
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, onerror=_folder_not_removed)
    return files, size


def _folder_not_removed(_function, path: str, exc_info) -> None:
    raise UserError(f"{path}: cannot remove it ({exc_info[1].strerror})")


def human_bytes(size: int) -> str:
    """A byte count for people: 812 B, 12.3 kB, 4.5 MB (powers of 1000)."""
    value, unit = float(size), 0
    while value >= 1000 and unit < len(UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {UNITS[unit]}"
