"""PostgreSQL's client programs (pg_dump, pg_restore) run against the configured database.

A client program must be at least as new as the server. Debian installs one set per major version in
/usr/lib/postgresql/<major>/bin (/usr/bin/pg_dump is a wrapper that guesses one), so the one of the
server's version is taken from there, else the nearest newer one, else the one on PATH when it is new
enough. The password travels in PGPASSWORD, never on the command line, where `ps` would show it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from neurotriage.clinical.db import CONNECT_TIMEOUT_S
from neurotriage.errors import UserError

DEBIAN_PROGRAMS = Path("/usr/lib/postgresql")
_MAJOR = re.compile(r"\(PostgreSQL\) (\d+)")


def client_program(name: str, server_major: int) -> Path:
    """The program `name` (pg_dump, pg_restore) to run against a server of major version `server_major`."""
    for major, path in _debian_programs(name):
        if major >= server_major:
            return path
    on_path = shutil.which(name)
    if on_path is not None and _major_of(Path(on_path)) >= server_major:
        return Path(on_path)
    raise UserError(
        f"{name} of PostgreSQL {server_major} or newer is not installed: install PostgreSQL's client programs"
        f" (Debian and Ubuntu: postgresql-client-{server_major})"
    )


def _debian_programs(name: str) -> list[tuple[int, Path]]:
    """(major version, path) of each `name` under /usr/lib/postgresql, oldest first."""
    found = [(path.parts[-3], path) for path in DEBIAN_PROGRAMS.glob(f"*/bin/{name}")]
    return sorted((int(major), path) for major, path in found if major.isdigit())


def _major_of(program: Path) -> int:
    """The major version a client program reports, 0 when it reports none."""
    done = subprocess.run([str(program), "--version"], capture_output=True, text=True)
    match = _MAJOR.search(done.stdout)
    return int(match[1]) if match else 0


def connection_args(url: str) -> tuple[str, dict[str, str]]:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL, without its password, and the
    environment to run a client program in (the password in PGPASSWORD)."""
    from psycopg.conninfo import make_conninfo  # psycopg loads only for PostgreSQL

    parsed = make_url(url)
    params = {name: value[-1] if isinstance(value, tuple) else value for name, value in parsed.query.items()}
    where = {"host": parsed.host, "port": parsed.port, "user": parsed.username, "dbname": parsed.database}
    params |= {name: str(value) for name, value in where.items() if value is not None}
    env = os.environ | {"PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
    if parsed.password is not None:
        env["PGPASSWORD"] = parsed.password
    return make_conninfo(**params), env


def run_program(command: list[str], env: dict[str, str], what: str) -> str:
    """Run a client program and return what it printed; a failure is a UserError with the first line
    of its complaint (the lines after it may quote rows)."""
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        said = lines[0] if lines else f"exit status {done.returncode}"
        raise UserError(f"{what}: {Path(command[0]).name} failed: {said}")
    return done.stdout


def quoted_pattern(name: str) -> str:
    """`name` as a pg_dump pattern that matches exactly that name (case and wildcards kept)."""
    return '"' + name.replace('"', '""') + '"'
