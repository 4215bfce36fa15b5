"""`restore`: rebuild an empty installation (database and NEUROTRIAGE_HOME) from a `backup` archive.

Everything that can refuse the archive is checked before anything is written in place: the manifest,
the database kind and the home it came from, a schema revision this version knows, an empty target
database and a NEUROTRIAGE_HOME without data files. Then every member is extracted into a hidden
folder inside NEUROTRIAGE_HOME and its SHA-256 compared with the manifest; a damaged or altered member
is refused by name and the folder removed. Only then is the database restored (SQLite: the copy moved
into place; PostgreSQL: pg_restore in one transaction), the files renamed into place (only a failing
file system stops a rename, which leaves the database restored and the files partly in place), and
the schema upgraded to this version's head when the archive is older. NEUROTRIAGE_HOME must be the
path the archive came from: the database names report folders, cases and jobs by their full path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from neurotriage.clinical import db
from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.files import (
    CHUNK,
    atomic_path,
    drop_set_aside,
    move_into_place,
    owner_alive,
    partial_dir,
    staged_entry,
)
from neurotriage.maintenance.archive import (
    DATABASE,
    FORMAT,
    HOME,
    MANIFEST,
    Manifest,
    database_files,
    home_files,
    safe_member,
)
from neurotriage.maintenance.pg_tools import client_program, connection_args, run_program
from neurotriage.maintenance.snapshot import backend, open_sqlite, schema_and_version, sqlite_path

STAGING = "restore"
# pg_restore's list entries of the schema itself: the target's schema exists already.
SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:SCHEMA - |COMMENT - SCHEMA |ACL - SCHEMA )")


class RestoreResult(BaseModel):
    """What one restore put in place."""

    files: int  # files of NEUROTRIAGE_HOME
    bytes: int  # the database and the files
    database: str
    from_revision: str
    to_revision: str
    seconds: float


def restore(archive: Path | str, url: str | None = None, progress: bool = False) -> RestoreResult:
    """Restore the database of `url` (default: the configured one) and NEUROTRIAGE_HOME from the tar
    `archive`, which must be whole and fit this installation, into an empty installation."""
    started = time.perf_counter()
    url, archive = db.database_url(url), Path(archive).resolve()
    home = load_settings().home.resolve()
    with _opened(archive) as tar:
        manifest = _manifest(tar, archive)
        _check_fits(manifest, archive, url, home)
        server_major = _require_empty(url, home, archive, manifest.schema_name)
        home.mkdir(parents=True, exist_ok=True)
        _drop_dead_staging(home)
        with _staging(home) as staged:
            _extract(tar, manifest, archive, staged, progress)
            _restore_database(manifest, staged, url, home, server_major)
            _place(staged / HOME, home)
    db.dispose_engines()  # pooled connections may still point at the file that was replaced
    if manifest.revision != db.head_revision():
        db.migrate_and_load(url, create=False)
    return RestoreResult(
        files=len(manifest.files) - 1,
        bytes=manifest.total_bytes,
        database=manifest.database,
        from_revision=manifest.revision,
        to_revision=db.head_revision(),
        seconds=round(time.perf_counter() - started, 2),
    )


@contextmanager
def _opened(archive: Path) -> Iterator[tarfile.TarFile]:
    """The archive open for reading; a missing, unreadable or damaged tar is a UserError."""
    if not archive.is_file():
        raise UserError(f"{archive}: no such file")
    try:
        with tarfile.open(archive, mode="r:") as tar:
            yield tar
    except tarfile.TarError as exc:
        raise UserError(f"{archive}: not a readable backup archive: {exc}") from None


def _manifest(tar: tarfile.TarFile, archive: Path) -> Manifest:
    """The archive's manifest, checked: a format this version reads, and safe member names."""
    try:
        source = tar.extractfile(MANIFEST)
        manifest = Manifest.model_validate_json(source.read()) if source else None
    except KeyError:
        manifest = None
    except ValidationError as exc:
        raise UserError(f"{archive}: {MANIFEST} is damaged: {exc.errors()[0]['msg']}") from None
    if manifest is None:
        raise UserError(f"{archive}: not a neurotriage backup (no {MANIFEST} in it)")
    if manifest.format > FORMAT:
        raise UserError(f"{archive}: backup format {manifest.format} is newer than this neurotriage reads ({FORMAT})")
    unsafe = [f.path for f in manifest.files if safe_member(f.path) is None]
    if unsafe:
        raise UserError(f"{archive}: {MANIFEST} names {unsafe[0]!r}, outside the archive's folders")
    if manifest.database_file not in {f.path for f in manifest.files}:
        raise UserError(f"{archive}: {MANIFEST} does not list its database file {manifest.database_file!r}")
    return manifest


def _check_fits(manifest: Manifest, archive: Path, url: str, home: Path) -> None:
    """Refuse an archive of another database kind, another NEUROTRIAGE_HOME or an unknown schema revision."""
    kind = backend(url)
    if manifest.database != kind:
        raise UserError(
            f"{archive}: holds a {manifest.database} database; the configured database {db.redact(url)} is {kind}"
        )
    if Path(manifest.home) != home:
        raise UserError(
            f"{archive}: comes from NEUROTRIAGE_HOME={manifest.home}, whose paths its database names;"
            f" set NEUROTRIAGE_HOME to that path to restore it (it is {home})"
        )
    if not db.known_revision(manifest.revision):
        raise UserError(
            f"{archive}: its database is at schema revision {manifest.revision!r}, which this version of"
            f" neurotriage does not know (made by a newer version?); the newest known is {db.head_revision()!r}"
        )


def _require_empty(url: str, home: Path, archive: Path, schema: str | None) -> int:
    """Refuse a database with tables or a NEUROTRIAGE_HOME with data files, and a PostgreSQL database whose
    schema is not `schema`, the one dumped; returns PostgreSQL's major version (0 for SQLite)."""
    if backend(url) == "sqlite":
        tables, major = _sqlite_tables(sqlite_path(url)), 0
    else:
        tables, major = _postgres_tables(url, schema)
    if tables:
        raise UserError(f"database {db.redact(url)} holds {tables} table(s): restore needs an empty database")
    leave_out = {archive, *(database_files(sqlite_path(url).resolve()) if major == 0 else ())}
    found = next(home_files(home, leave_out), None) if home.is_dir() else None
    if found is not None:
        raise UserError(f"NEUROTRIAGE_HOME {home} holds data ({found}): restore needs an empty installation")
    return major


def _sqlite_tables(path: Path) -> int:
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    try:
        with closing(open_sqlite(path)) as conn:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    except sqlite3.Error as exc:
        raise UserError(f"database {path}: cannot read it: {exc}") from None


def _postgres_tables(url: str, schema: str | None) -> tuple[int, int]:
    """The number of tables in the database's schema, which must be `schema`, and the server's major version.

    The dump names every object by its schema, so it loads into a schema of that name only."""
    query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    with db.connection(url) as conn:
        schema_now, major = schema_and_version(conn, url)
        if schema_now != schema:
            raise UserError(
                f"database {db.redact(url)}: the archive holds schema {schema!r}, the configured database"
                f" uses {schema_now!r}: set its search_path to {schema!r}"
            )
        return conn.exec_driver_sql(query).scalar_one(), major


def _drop_dead_staging(home: Path) -> None:
    """Remove what a killed restore left in NEUROTRIAGE_HOME (its extracted files hold patient data)."""
    for path in home.glob(f".{STAGING}.*.partial"):
        staged = staged_entry(path)
        if staged is not None and not owner_alive(staged):
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _staging(home: Path) -> Iterator[Path]:
    """A hidden folder inside NEUROTRIAGE_HOME (so its files rename into place), removed at the end."""
    staged = partial_dir(home / STAGING, mode=0o700)
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _extract(tar: tarfile.TarFile, manifest: Manifest, archive: Path, staged: Path, progress: bool) -> None:
    """Extract every member into `staged`, refusing any that the manifest does not list or whose SHA-256 or
    size differs from it, and any listed member the archive lacks."""
    expected = {f.path: f for f in manifest.files}
    seen: set[str] = set()
    with tqdm(
        total=manifest.total_bytes, unit="B", unit_scale=True, desc="restore", leave=False, disable=not progress
    ) as bar:
        for info in tar:
            if info.name == MANIFEST:
                continue
            entry = expected.get(info.name)
            if entry is None or not info.isfile() or info.name in seen:
                raise UserError(f"{archive}: {info.name} is not a file its manifest lists once")
            digest = _copy_out(tar, info, staged / info.name, bar.update)
            if digest != entry.sha256 or info.size != entry.size:
                raise UserError(f"{archive}: {info.name} is damaged: its SHA-256 differs from the manifest's")
            seen.add(info.name)
    missing = sorted(expected.keys() - seen)
    if missing:
        raise UserError(f"{archive}: lacks {missing[0]}, which its manifest lists")


def _copy_out(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path, advance) -> str:
    """Write one member to `target` (owner-only until it is in place) and return its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    source = tar.extractfile(info)
    with open(target, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
            advance(len(chunk))
    os.chmod(target, info.mode & 0o777 or 0o600)
    os.utime(target, (info.mtime, info.mtime))
    return digest.hexdigest()


def _restore_database(manifest: Manifest, staged: Path, url: str, home: Path, server_major: int) -> None:
    """Put the archived database in place: SQLite's file, or PostgreSQL's dump loaded in one transaction."""
    source = staged / manifest.database_file
    if manifest.database == "sqlite":
        _place_sqlite(source, sqlite_path(url).resolve(), staged / HOME, home)
    else:
        _pg_restore(source, url, server_major, staged / DATABASE)


def _place_sqlite(source: Path, target: Path, staged_home: Path, home: Path) -> None:
    """Move the SQLite copy to `target`: with the home's files when it lies under NEUROTRIAGE_HOME, else
    atomically beside it. An empty database there before, and SQLite's files beside it, go first: a
    stale write-ahead log would be applied to the restored file."""
    for path in database_files(target):
        path.unlink(missing_ok=True)
    if target.is_relative_to(home):
        inside = staged_home / target.relative_to(home)
        inside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, inside)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _pg_restore(dump: Path, url: str, server_major: int, work: Path) -> None:
    """Load a schema's dump into the configured database's schema of that name, in one transaction."""
    conninfo, env = connection_args(url)
    program = str(client_program("pg_restore", server_major))
    what = f"database {db.redact(url)}"
    listing = run_program([program, "--list", str(dump)], env, what).splitlines()
    chosen = work / "restore.list"
    chosen.write_text("".join(f"{line}\n" for line in listing if not SCHEMA_ENTRY.match(line)))
    options = ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", f"--use-list={chosen}"]
    run_program([program, *options, f"--dbname={conninfo}", str(dump)], env, what)


def _place(staged_home: Path, home: Path) -> None:
    """Rename each extracted top-level entry into NEUROTRIAGE_HOME (an empty folder there is replaced)."""
    if not staged_home.is_dir():
        return
    for entry in sorted(staged_home.iterdir()):
        drop_set_aside(move_into_place(entry, home / entry.name))
