from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for machine clients. The key is printed once and cannot be shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what uses the key, e.g. 'reporting-service'")
        parser.add_argument(
            "--scope",
            action="append",
            choices=Scope.values,
            dest="scopes",
            help="repeatable; default: read and write",
        )

    def handle(self, *args, name: str, scopes: list[str] | None, **options) -> None:
        try:
            key, full_key = api_key_create(name=name, scopes=scopes or [Scope.READ, Scope.WRITE])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created API key '{key.name}' (prefix {key.prefix}, scopes {', '.join(key.scopes)}).")
        self.stdout.write("Store it now; it will not be shown again:")
        self.stdout.write(full_key)
