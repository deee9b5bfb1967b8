"""Helpers shared by the admin page tests: sign people in with a role."""

from __future__ import annotations

from django.test import Client

from buyer.accounts.models import Role
from buyer.accounts.services import user_create

PASSWORD = "s3cret-pass-word-for-tests"


def signed_in(client: Client, *, username: str, role: Role, **extra):
    user = user_create(username=username, email=f"{username}@example.com", password=PASSWORD, role=role, **extra)
    client.force_login(user)
    return user


def message_texts(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []
