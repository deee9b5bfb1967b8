"""``manage.py heartbeat_fresh ROLE…``: exit 0 when every named heartbeat is fresh, 1 otherwise (a container's
healthcheck: ``beat``, ``worker:<queue>``; ``worker`` alone means every queue's)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from buyer.health.checks import HEALTHY, heartbeats


class Command(BaseCommand):
    help = "Exit 0 when the named heartbeats (beat, worker, worker:<queue>) are fresh, 1 naming those that are not."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("roles", nargs="+", help="beat, worker (every queue), or worker:<queue>")

    def handle(self, *args: object, roles: list[str], **options: object) -> None:
        report = heartbeats()
        wanted = [r for r in report if r in roles or (r.startswith("worker:") and "worker" in roles)]
        unknown = [r for r in roles if r != "worker" and r not in report]
        if unknown:
            raise CommandError(f"No such heartbeat: {', '.join(unknown)} (known: {', '.join(report)})")
        stale = [role for role in wanted if report[role]["status"] != HEALTHY]
        if stale:
            raise CommandError(f"Not fresh: {', '.join(stale)}")
        self.stdout.write(f"Fresh: {', '.join(wanted)}")
