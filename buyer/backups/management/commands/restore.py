"""``manage.py restore FILE [--force] [--database-url URL]``: a backup back into a database."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from buyer.backups.services import BackupError, Target, restore


class Command(BaseCommand):
    help = (
        "Restore a file `manage.py backup` wrote. A database that holds data (jobs, campaigns, deals, sellers, "
        "users, API keys, events) is refused unless --force. Stop web, worker and beat first when restoring in "
        "place; run `manage.py migrate` afterwards when the backup is from an older version."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", type=Path, help="the backup file")
        parser.add_argument("--force", action="store_true", help="overwrite a database that holds data")
        parser.add_argument("--database-url", help="another database than DATABASE_URL's (a restore drill)")

    def handle(self, *args: object, backup: Path, force: bool, database_url: str | None, **options: object) -> None:
        try:
            target = Target.from_url(database_url) if database_url else Target.configured()
            restore(target, backup, force=force)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Restored {backup} into {target.describe()}.")
