"""``manage.py backup [--output FILE] [--database-url URL]``: a backup of the database in one file."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from buyer.backups.services import BackupError, Target, backup


class Command(BaseCommand):
    help = (
        "Back the database up to one file: PostgreSQL with pg_dump (custom format, for pg_restore), SQLite with "
        "its online backup API (safe while web and worker run). Default: var/backups/buyer-<UTC time>.<dump|sqlite3>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, help="the file to write (its folder is created)")
        parser.add_argument("--database-url", help="another database than DATABASE_URL's")

    def handle(self, *args: object, output: Path | None, database_url: str | None, **options: object) -> None:
        try:
            target = Target.from_url(database_url) if database_url else Target.configured()
            suffix = "dump" if target.engine == "postgresql" else "sqlite3"
            stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
            path = output or Path(settings.VAR_DIR) / "backups" / f"buyer-{stamp}.{suffix}"
            written = backup(target, path)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        size = written.stat().st_size
        self.stdout.write(f"Backed up {target.describe()} to {written} ({size:,} bytes).")
