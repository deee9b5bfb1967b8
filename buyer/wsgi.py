"""WSGI entry point: the REST API and the pages without MCP (``buyer.asgi`` serves all three on one port)."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")
django.setup(set_prefix=False)

from buyer.web import build_wsgi  # noqa: E402 - after django.setup()

application = build_wsgi()
