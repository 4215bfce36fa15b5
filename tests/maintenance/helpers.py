"""Helpers of the backup tests: installations to fill, destroy and compare."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding
from neurotriage.files import sha256_file
from neurotriage.maintenance.archive import LOCK_NAMES, database_files


@dataclass(frozen=True)
class Installation:
    """A configured database and NEUROTRIAGE_HOME."""

    url: str
    home: Path

    def destroy(self) -> None:
        """Lose everything: the database becomes empty (SQLite: no file; PostgreSQL: an empty schema of the
        same name) and NEUROTRIAGE_HOME goes."""
        db.dispose_engines()
        if self.url.startswith("sqlite"):
            for path in database_files(db.sqlite_file(self.url)):
                path.unlink(missing_ok=True)
        else:
            with db.connection(self.url) as conn:
                schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            db.dispose_engines()
        shutil.rmtree(self.home, ignore_errors=True)

    def tables(self) -> int:
        """How many tables the database holds."""
        if self.url.startswith("sqlite"):
            path = db.sqlite_file(self.url)
            if not path.exists():
                return 0
            query = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        else:
            query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        with db.connection(self.url) as conn:
            return conn.execute(text(query)).scalar_one()

    def file_hashes(self) -> dict[str, str]:
        """The SHA-256 of every file under NEUROTRIAGE_HOME, but the SQLite database's and lock files, by
        relative path."""
        skip = database_files(db.sqlite_file(self.url)) if self.url.startswith("sqlite") else set()
        files = (p for p in self.home.rglob("*") if p.is_file() and p not in skip and p.name not in LOCK_NAMES)
        return {str(p.relative_to(self.home)): sha256_file(p) for p in files}


def write_report(folder: Path, key: str, files: tuple[str, ...] = ("report.html",)) -> Path:
    """A minimal report folder naming finding `key`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text(f"{name} of {key}")
    (folder / "report.json").write_text(json.dumps({"finding_key": key, "files": list(files)}))
    return folder


def add_finding(url: str, folder: Path) -> str:
    """A stored finding of a new patient whose report folder is `folder`; returns its key."""
    key = str(uuid.uuid4())
    with db.transaction(url) as session:
        patient = intake.add_patient(session, "Backup Test")
        study = intake.study_for(session, patient.id, f"case-{key}")
        session.add(Finding(study_id=study.id, locate={}, model_id="test", key=key, report_dir=str(folder)))
    return key
