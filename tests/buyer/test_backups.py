"""Backup and restore round trips: the test database (PostgreSQL in CI, SQLite otherwise) backed up with
``manage.py backup``, restored into a scratch database with ``manage.py restore``, and compared table by table
(row counts, and checksums of the money tables); a database that holds data is refused without --force."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from buyer.backups.services import Target
from campaigns.models import VersionEpoch
from tests.factories import BookedDealFactory, RecommendationFactory

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump reads what is committed

CHECKSUMMED = ("campaigns_campaign", "campaigns_bookingjob", "campaigns_bookeddeal", "campaigns_recommendation")


def _pg(target: Target):
    import psycopg

    return psycopg.connect(
        dbname=target.name, host=target.host or None, port=target.port or None, user=target.user or None,
        password=target.password or None, autocommit=True,
    )  # fmt: skip


def tables_and_checksums(target: Target) -> tuple[dict[str, int], dict[str, str]]:
    """Rows per table, and an md5 of the rows of ``CHECKSUMMED`` in primary-key order."""
    if target.engine == "sqlite":
        db = sqlite3.connect(target.name)
        names = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        ]
        query = lambda sql: db.execute(sql).fetchall()  # noqa: E731
    else:
        db = _pg(target)
        names = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        query = lambda sql: db.execute(sql).fetchall()  # noqa: E731
    try:
        counts = {name: query(f'SELECT COUNT(*) FROM "{name}"')[0][0] for name in sorted(names)}
        sums = {
            name: hashlib.md5(repr(query(f'SELECT * FROM "{name}" ORDER BY 1')).encode()).hexdigest()
            for name in CHECKSUMMED
        }
    finally:
        db.close()
    return counts, sums


@pytest.fixture
def scratch(tmp_path: Path):
    """An empty database of the test database's engine, dropped afterwards; yields its URL and Target."""
    source = Target.configured()
    if source.engine == "sqlite":
        path = tmp_path / "restored.sqlite3"
        yield f"sqlite:///{path}", Target(engine="sqlite", name=str(path))
        return
    name = f"restore_drill_{uuid.uuid4().hex[:8]}"
    admin = _pg(source)
    admin.execute(f'CREATE DATABASE "{name}"')
    auth = source.user + (f":{source.password}" if source.password else "")
    url = f"postgresql://{auth}@{source.host or '127.0.0.1'}:{source.port or 5432}/{name}"
    try:
        yield url, Target.from_url(url)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_backup_restores_into_a_scratch_database_with_the_same_rows(tmp_path, scratch, capsys):
    for n in range(3):
        BookedDealFactory(recommendation=RecommendationFactory(), deal_id=f"DEAL-{n:04d}")
    url, restored = scratch
    backup_file = tmp_path / "buyer.backup"
    call_command("backup", output=backup_file)
    assert "Backed up" in capsys.readouterr().out and backup_file.stat().st_size > 0
    assert not backup_file.with_name(backup_file.name + ".partial").exists()
    epoch_before = VersionEpoch.objects.first() if connection.vendor == "postgresql" else None

    call_command("restore", str(backup_file), database_url=url)
    assert "Restored" in capsys.readouterr().out
    source_counts, source_sums = tables_and_checksums(Target.configured())
    restored_counts, restored_sums = tables_and_checksums(restored)
    assert restored_counts == source_counts and source_counts["campaigns_bookeddeal"] == 3
    assert restored_sums == {k: v for k, v in source_sums.items() if k != "campaigns_versionepoch"}
    if epoch_before is not None:  # PostgreSQL: the restored database starts a new epoch for the fast reads
        with _pg(restored) as db:
            assert db.execute("SELECT epoch FROM campaigns_versionepoch").fetchone()[0] != epoch_before.epoch

    with pytest.raises(CommandError, match=r"holds data .*campaigns_bookeddeal 3.*--force"):
        call_command("restore", str(backup_file), database_url=url)
    call_command("restore", str(backup_file), database_url=url, force=True)
    assert tables_and_checksums(restored)[0] == source_counts


def test_restore_refuses_what_is_not_a_backup_of_its_engine(tmp_path, scratch):
    url, _ = scratch
    bogus = tmp_path / "bogus.backup"
    bogus.write_bytes(b"not a backup at all")
    with pytest.raises(CommandError, match=r"is not a (PostgreSQL|SQLite) backup"):
        call_command("restore", str(bogus), database_url=url)
    with pytest.raises(CommandError, match="There is no backup"):
        call_command("restore", str(tmp_path / "missing"), database_url=url)


def test_a_sqlite_database_backs_up_and_restores_on_any_engine(tmp_path):
    """The embedded default's path, whatever the test database is: the online backup API both ways."""
    live = tmp_path / "live.sqlite3"
    with sqlite3.connect(live) as db:
        db.execute("CREATE TABLE campaigns_bookingjob (id INTEGER PRIMARY KEY, status TEXT)")
        db.executemany("INSERT INTO campaigns_bookingjob (status) VALUES (?)", [("completed",)] * 5)
    url = f"sqlite:///{live}"
    call_command("backup", output=tmp_path / "b.sqlite3", database_url=url)
    with sqlite3.connect(live) as db:
        db.execute("DELETE FROM campaigns_bookingjob WHERE id > 2")
    with pytest.raises(CommandError, match="holds data"):
        call_command("restore", str(tmp_path / "b.sqlite3"), database_url=url)
    call_command("restore", str(tmp_path / "b.sqlite3"), database_url=url, force=True)
    with sqlite3.connect(live) as db:
        assert db.execute("SELECT COUNT(*) FROM campaigns_bookingjob").fetchone()[0] == 5


def test_sqlite_urls_name_absolute_and_relative_files_as_database_url_does(tmp_path, monkeypatch, settings):
    from buyer.settings import _database_config

    monkeypatch.chdir(tmp_path)  # not where a relative name points: the project directory is
    for url in ("sqlite:////var/lib/buyer.db", "sqlite:///buyer.db", "sqlite:///./var/buyer.db"):
        assert Target.from_url(url).name == _database_config(url)["NAME"], url
    assert Target.from_url("sqlite:////var/lib/buyer.db").name == "/var/lib/buyer.db"
    assert Target.from_url("sqlite:///buyer.db").name == str(settings.BASE_DIR / "buyer.db")
    assert "secret" not in Target.from_url("postgresql://u:secret@db:5432/buyer").describe()
