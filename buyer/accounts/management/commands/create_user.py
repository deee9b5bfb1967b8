from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError, CommandParser

from buyer.accounts.models import Role
from buyer.accounts.services import user_create


class Command(BaseCommand):
    help = "Create a dashboard user (media buyer or admin). Prompts for the password unless --password is given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--role", choices=Role.values, default=Role.MEDIA_BUYER)
        parser.add_argument("--password", help="for scripts; otherwise you are prompted")
        parser.add_argument("--time-zone", default="UTC")

    def handle(self, *args, username: str, email: str, role: str, password: str | None, time_zone: str, **options):
        from django.contrib.auth import get_user_model

        if get_user_model().objects.filter(username=username).exists():
            raise CommandError(f"User {username!r} already exists")
        if password is None:
            password = getpass.getpass("Password: ")
            if not password:
                raise CommandError("A password is required")
        user_create(username=username, email=email, password=password, role=Role(role), time_zone=time_zone)
        self.stdout.write(f"Created {role} {username!r}.")
