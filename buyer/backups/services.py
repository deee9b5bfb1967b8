"""Backups of the product's database and their restore: PostgreSQL with ``pg_dump`` / ``pg_restore`` (custom
format, one file), SQLite with its online backup API (a consistent copy while web and worker write). A restore
refuses a database that holds data unless told to overwrite it, and afterwards starts a new version epoch, so no
web process gives an answer it kept from before the restore."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings

# Tables whose rows make a database "in use": restoring over them needs --force.
DATA_TABLES = (
    "campaigns_campaign",
    "campaigns_bookingjob",
    "campaigns_bookeddeal",
    "sellers_seller",
    "apikeys_apikey",
    "auth_user",
    "events_event",
)


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    """A database, as the backup tools reach it."""

    engine: str  # "postgresql" or "sqlite"
    name: str  # the database name, or the SQLite file
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme.startswith("sqlite"):
            path = unquote(parts.path)
            # sqlite:////abs/path, and sqlite:///relative from the project directory, as DATABASE_URL takes them
            name = Path(path[1:])
            return cls(engine="sqlite", name=str(name if name.is_absolute() else (settings.BASE_DIR / name).resolve()))
        if parts.scheme in {"postgres", "postgresql", "pgsql", "psql"}:
            return cls(
                engine="postgresql",
                name=unquote(parts.path.lstrip("/")),
                host=parts.hostname or "",
                port=str(parts.port or ""),
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
            )
        raise BackupError(f"Cannot back up a database at {parts.scheme}:// (PostgreSQL or SQLite only).")

    @classmethod
    def configured(cls) -> Target:
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):
            return cls(engine="sqlite", name=str(database["NAME"]))
        return cls(
            engine="postgresql",
            name=str(database["NAME"]),
            host=str(database.get("HOST") or ""),
            port=str(database.get("PORT") or ""),
            user=str(database.get("USER") or ""),
            password=str(database.get("PASSWORD") or ""),
        )

    def describe(self) -> str:
        """Where, without the password."""
        if self.engine == "sqlite":
            return f"SQLite {self.name}"
        who = f"{self.user}@" if self.user else ""
        return f"PostgreSQL {who}{self.host or 'localhost'}:{self.port or 5432}/{self.name}"

    def libpq_env(self) -> dict[str, str]:
        """The environment pg_dump and pg_restore read: the password never appears on a command line."""
        env = {**os.environ}
        for key, value in (("PGHOST", self.host), ("PGPORT", self.port), ("PGUSER", self.user)):
            if value:
                env[key] = value
        if self.password:
            env["PGPASSWORD"] = self.password
        env["PGDATABASE"] = self.name
        env["PGCONNECT_TIMEOUT"] = "10"
        return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install the PostgreSQL client (Debian: postgresql-client).")
    return found


def _run(argv: list[str], target: Target) -> None:
    result = subprocess.run(argv, env=target.libpq_env(), capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed: {result.stderr.strip()[-2000:]}")


def backup(target: Target, output: Path) -> Path:
    """Write a backup of ``target`` to ``output`` (PostgreSQL: pg_dump's custom format; SQLite: a database file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    if target.engine == "postgresql":
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}"], target)
    else:
        if not Path(target.name).exists():
            raise BackupError(f"There is no database at {target.name}.")
        source, copy = sqlite3.connect(target.name), sqlite3.connect(partial)
        try:
            source.backup(copy)  # the online backup API: consistent while web and worker keep writing
        finally:
            copy.close()
            source.close()
    partial.replace(output)  # a backup file is either whole or absent
    return output


def rows_in_use(target: Target) -> dict[str, int]:
    """Rows in the tables that make a database in use (only those that exist and hold rows)."""
    counts: dict[str, int] = {}
    if target.engine == "sqlite":
        if not Path(target.name).exists():
            return counts
        with sqlite3.connect(target.name) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in DATA_TABLES:
                count = f'SELECT COUNT(*) FROM "{table}"'  # noqa: S608 - DATA_TABLES, constant names
                if table in tables and (n := db.execute(count).fetchone()[0]):
                    counts[table] = n
        return counts
    from psycopg import sql

    with _pg_connect(target) as db:
        for table in DATA_TABLES:
            if db.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
                continue
            if n := db.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]:
                counts[table] = n
    return counts


def _pg_connect(target: Target) -> Any:
    import psycopg
    from psycopg.conninfo import make_conninfo

    params: dict[str, str | int] = {"dbname": target.name, "connect_timeout": 10}
    params.update({k: v for k, v in (("host", target.host), ("port", target.port), ("user", target.user)) if v})
    if target.password:
        params["password"] = target.password
    try:
        return psycopg.connect(make_conninfo("", **params), autocommit=True)
    except psycopg.OperationalError as exc:
        raise BackupError(f"Cannot connect to {target.describe()}: {type(exc).__name__}.") from None


def _header(source: Path, size: int) -> bytes:
    """The first ``size`` bytes of a backup file (never the whole dump in memory)."""
    with source.open("rb") as file:
        return file.read(size)


def restore(target: Target, source: Path, *, force: bool = False) -> None:
    """Restore ``source`` (a file ``backup`` wrote) into ``target``. A target that holds data is refused unless
    ``force``; afterwards the fast reads' version epoch is renewed."""
    if not source.is_file():
        raise BackupError(f"There is no backup at {source}.")
    in_use = rows_in_use(target)
    if in_use and not force:
        rows = ", ".join(f"{table} {n}" for table, n in sorted(in_use.items()))
        raise BackupError(
            f"{target.describe()} holds data ({rows}): restoring would replace it. Restore into an empty database, "
            "or pass --force to overwrite this one."
        )
    if target.engine == "postgresql":
        if _header(source, 5) != b"PGDMP":
            raise BackupError(f"{source} is not a PostgreSQL backup (pg_dump custom format).")
        argv = [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--exit-on-error"]
        _run([*argv, f"--dbname={target.name}", str(source)], target)
        with _pg_connect(target) as db:
            if db.execute("SELECT to_regclass('campaigns_versionepoch')").fetchone()[0] is not None:
                # Web processes give kept answers only while the epoch is the one they kept them under.
                db.execute("UPDATE campaigns_versionepoch SET epoch = %s WHERE id = 1", [uuid.uuid4()])
        return
    if _header(source, 16) != b"SQLite format 3\x00":
        raise BackupError(f"{source} is not a SQLite backup.")
    Path(target.name).parent.mkdir(parents=True, exist_ok=True)
    backup_db, live = sqlite3.connect(source), sqlite3.connect(target.name, timeout=30)
    try:
        backup_db.backup(live)  # under the target's lock: readers see the old database or the restored one
    finally:
        live.close()
        backup_db.close()
