"""Clearing what killed processes left beside the report folders: hidden drafts and set-aside folders.

A report is drafted in a hidden '.<folder>.<owner>_<unique>.partial' beside its folder, the finding
is committed, then the draft is moved into place; an earlier report there is set aside as
'.<folder>.old-<owner>_<unique>' and dropped (`neurotriage.files`). A process killed on the way
leaves these behind, and they hold patient data. For each one whose owner is dead on this host:

- a draft whose finding was committed (killed between the commit and the move) is moved into place;
- any other draft or temporary file is removed;
- a set-aside folder is removed once a folder is back in its place, and put back when none is.

Staging of a live process (another diagnose, the web server, or a process of another host) is
left alone. Hidden names that look like staging but were not made by `neurotriage.files` are
listed as unknown, for a person to judge.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select

from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Finding
from neurotriage.config import load_settings
from neurotriage.files import STAGED_GLOBS, Staged, drop_set_aside, move_into_place, owner_alive, staged_entry
from neurotriage.web.settings import load_web_settings

LOCK_NAME = ".sweep.lock"
REPORT_JSON = "report.json"


class Moved(BaseModel):
    """A leftover the sweep moved into place: a committed finding's draft, or a set-aside report put back."""

    path: str
    target: str


class SweepResult(BaseModel):
    """What a sweep did with each hidden leftover it found."""

    removed: list[str] = Field(default_factory=list)
    moved: list[Moved] = Field(default_factory=list)
    in_use: list[str] = Field(default_factory=list)  # a live process's, or another host's: left alone
    unknown: list[str] = Field(default_factory=list)  # not named by neurotriage.files: left for a person


def staging_roots(web_data_dir: Path | None = None) -> list[Path]:
    """Where report folders, uploads and generated cases are staged: NEUROTRIAGE_HOME/reports and /cases,
    and the web app's job and upload staging folders."""
    home = load_settings().home
    data = web_data_dir or load_web_settings().data_dir
    return [home / "reports", home / "cases", data / "jobs", data / "staging"]


def sweep(url: str | None = None, roots: Sequence[Path] | None = None, folders: Iterable[Path] = ()) -> SweepResult:
    """Remove, or move into place, the staging leftovers of dead processes in `roots` and their
    subfolders (default: `staging_roots()`) and in `folders` (report folders' parents elsewhere, such
    as a chosen `out_dir`'s); `url` is the database that says which findings exist."""
    roots = staging_roots() if roots is None else roots
    places = [place for root in roots for place in _root_and_subfolders(root)]
    elsewhere = {f.resolve() for f in folders if f.is_dir()}
    if elsewhere:
        places += sorted(elsewhere - {p.resolve() for p in places})
    result = SweepResult()
    with _locked():
        for folder in places:
            _sweep_folder(folder, url, result)
    return result


def _root_and_subfolders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    with os.scandir(root) as entries:  # scandir: no stat per entry
        subfolders = [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    return [root, *sorted(subfolders)]


@contextmanager
def _locked() -> Iterator[None]:
    """Hold NEUROTRIAGE_HOME's sweep lock, so two sweeps take turns (released when the process dies, too)."""
    home = load_settings().home
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _sweep_folder(folder: Path, url: str | None, result: SweepResult) -> None:
    """Sweep the leftovers directly in `folder`: drafts first, so a set-aside folder sees what came back."""
    dead: list[Staged] = []
    with os.scandir(folder) as entries:
        names = sorted(
            e.name for e in entries if e.name.startswith(".") and any(fnmatch(e.name, g) for g in STAGED_GLOBS)
        )
    for path in (folder / name for name in names):
        staged = staged_entry(path)
        if staged is None:
            result.unknown.append(str(path))
        elif owner_alive(staged):
            result.in_use.append(str(path))
        else:
            dead.append(staged)
    drafts = [s for s in dead if s.kind == "partial"]
    committed = _committed_drafts(drafts, url)
    for staged in drafts:
        if staged in committed:
            _move(staged, result)
        else:
            _remove(staged.path, result)
    for staged in (s for s in dead if s.kind == "old"):
        if staged.target.exists():
            _remove(staged.path, result)
        else:
            _move(staged, result)


def _remove(path: Path, result: SweepResult) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    if not path.exists():
        result.removed.append(str(path))


def _move(staged: Staged, result: SweepResult) -> None:
    drop_set_aside(move_into_place(staged.path, staged.target))
    result.moved.append(Moved(path=str(staged.path), target=str(staged.target)))


def read_report(folder: Path) -> dict | None:
    """`folder`'s report.json, None when it has no readable one."""
    try:
        doc = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def report_key(folder: Path) -> str | None:
    """The finding key that `folder`'s report.json names, None without one."""
    key = (read_report(folder) or {}).get("finding_key")
    return key if isinstance(key, str) else None


def _committed_drafts(drafts: list[Staged], url: str | None) -> list[Staged]:
    """The drafts whose finding is stored with the draft's target as its report folder, and that may
    replace what is there now (nothing, or the report of an older finding or of none)."""
    keys = {s: report_key(s.path) for s in drafts if s.path.is_dir()}
    keys = {s: key for s, key in keys.items() if key}
    if not keys:
        return []
    present = {s: report_key(s.target) for s in keys if s.target.exists()}
    wanted = {*keys.values(), *(k for k in present.values() if k)}
    with transaction(url) as session:
        rows = session.execute(select(Finding.key, Finding.id, Finding.report_dir).where(Finding.key.in_(wanted)))
        found = {key: (finding_id, report_dir) for key, finding_id, report_dir in rows}
    committed = []
    for staged, key in keys.items():
        finding_id, report_dir = found.get(key, (None, None))
        if report_dir is None or Path(report_dir).resolve() != staged.target.resolve():
            continue
        if staged in present and not _replaceable(staged.target, present[staged], finding_id, found):
            continue
        committed.append(staged)
    return committed


def _replaceable(target: Path, key: str | None, finding_id: int, found: dict) -> bool:
    """Whether a draft of finding `finding_id` may replace `target`, whose report names `key`."""
    if key is None:  # no report there: only an empty folder may go
        return target.is_dir() and not any(target.iterdir())
    return key not in found or found[key][0] < finding_id
