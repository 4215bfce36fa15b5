"""A throwaway PostgreSQL cluster of one's own, for tests and benchmarks that stop, restart or freeze the server.

`own_cluster()` runs initdb into a temporary folder and starts the server on a free localhost port;
the shared server of NEUROTRIAGE_TEST_DATABASE_URL is never touched. initdb refuses to run as root,
so as root the cluster belongs to the postgres user. `server_binaries()` is None where initdb and
pg_ctl are not installed: callers skip then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from neurotriage.clinical import db

MISSING = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Cluster:
    """A PostgreSQL cluster in a temporary folder, reachable over TCP on localhost while it runs."""

    url: str
    home: Path
    binaries: Path
    port: int

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.home / "data"

    @property
    def running(self) -> bool:
        """Whether the server runs (its postmaster.pid exists from start until it has stopped)."""
        return (self.data / "postmaster.pid").exists()

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        """Run `pg_ctl -D DATA ARGS` as the cluster's owner."""
        command = [*_as_owner(), str(self.binaries / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(command, capture_output=True, text=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-l", str(self.home / "log"), "-w", "-o", options, "start").check_returncode()

    def stop(self) -> None:
        """Stop the server as an administrator would: sessions are ended, open transactions roll back."""
        self.pg_ctl("-m", "fast", "-w", "stop").check_returncode()

    def restart(self) -> None:
        """Restart the server (fast): every existing connection is lost."""
        self.stop()
        self.start()

    def processes(self) -> list[int]:
        """The postmaster and every backend and helper it started."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue  # the process ended while being read
        return [postmaster, *children]

    def signal(self, number: signal.Signals) -> None:
        """Send `number` to every process of the cluster."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)


@contextlib.contextmanager
def own_cluster(binaries: Path) -> Iterator[Cluster]:
    """A new running cluster (superuser neurotriage, trust on localhost), stopped and removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="nt-own-pg-"))
    if _as_owner():
        shutil.chown(home, "postgres")
    port = free_port()
    cluster = Cluster(f"postgresql+psycopg://neurotriage@127.0.0.1:{port}/postgres", home, binaries, port)
    initdb = [str(binaries / "initdb"), "-D", str(cluster.data), "-U", "neurotriage", "-A", "trust", "--no-sync"]
    try:
        subprocess.run([*_as_owner(), *initdb], check=True, capture_output=True)
        cluster.start()
        yield cluster
    finally:
        if cluster.running:
            cluster.signal(signal.SIGCONT)
            cluster.pg_ctl("-m", "immediate", "-w", "stop")
        db.dispose_engines()
        shutil.rmtree(home, ignore_errors=True)
