"""A real PostgreSQL server for the tests, started from Debian's binaries on a free local port.

Not a test module: ``conftest.py`` starts one per test session (per xdist worker) and stops it
afterwards. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
system user the Debian package creates, in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One ``initdb``-ed cluster in a temporary folder, listening on 127.0.0.1:``port``."""

    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None) -> None:
        """``settings``: server settings beside the suite's own, e.g.
        ``{"autovacuum_naptime": "1s"}``."""
        self.bin_dir = bin_dir
        self.settings = dict(settings or {})
        self.folder = Path(tempfile.mkdtemp(prefix="optical-memory-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._names = itertools.count()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin_dir / tool), *args],
            check=True,
            capture_output=True,
            cwd=self.folder,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        ) + "".join(f" -c {name}={value}" for name, value in self.settings.items())
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (ending every connection) and start again on the same port."""
        self.stop()
        self.start()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its address."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def dump(self, dsn: str) -> bytes:
        """``pg_dump`` of a database: every byte a backup of it would hold."""
        return subprocess.run(
            [str(self.bin_dir / "pg_dump"), dsn], check=True, capture_output=True
        ).stdout

    def table_files(self, dsn: str, schema: str = "optical_memory") -> bytes:
        """Every byte of the files holding ``schema``'s tables on disk: their heaps, TOAST
        tables and every index, each file as ``pg_relation_filepath`` names it (all its 1 GB
        segments) after a ``CHECKPOINT`` wrote the changed pages out. Dead rows a query no
        longer sees are still there until they are vacuumed."""
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute("CHECKPOINT")
            data = Path(db.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
            rows = db.execute(
                "WITH own AS (SELECT c.oid, c.reltoastrelid FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s), "
                "rels AS (SELECT oid FROM own UNION SELECT reltoastrelid FROM own "
                "WHERE reltoastrelid <> 0) "
                "SELECT pg_relation_filepath(r.oid) FROM rels r "
                "UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_index i "
                "JOIN rels r ON i.indrelid = r.oid",
                (schema,),
            ).fetchall()
        chunks: list[bytes] = []
        for (path,) in rows:
            main = data / path
            segments = [main, *sorted(main.parent.glob(main.name + ".*"))]  # name.1, name.2 ...
            chunks.extend(segment.read_bytes() for segment in segments if segment.exists())
        return b"".join(chunks)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
