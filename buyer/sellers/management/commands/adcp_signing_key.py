from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from buyer.sellers.models import SigningKey
from buyer.sellers.signing import jwks, key_create


class Command(BaseCommand):
    help = (
        "The buyer's RFC 9421 request-signing keys for AdCP sellers: create one (it signs from now on; older ones "
        "stay published until retired), list them, retire one, or print the published JWKS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("create", help="make a new key; it signs from now on")
        actions.add_parser("list", help="every key, newest first")
        retire = actions.add_parser("retire", help="stop signing with and publishing a key")
        retire.add_argument("kid")
        actions.add_parser("jwks", help="print the JWKS served at /.well-known/jwks.json")

    def handle(self, *args, action: str, **options) -> None:
        if action == "create":
            key = key_create()
            self.stdout.write(f"Created signing key {key.kid} (ed25519); it signs from now on.")
            self.stdout.write("Sellers verify it from /.well-known/jwks.json; its public JWK:")
            self.stdout.write(json.dumps(key.public_jwk))
        elif action == "list":
            keys = list(SigningKey.objects.all())
            if not keys:
                self.stdout.write("No signing key: `adcp_signing_key create` makes one.")
            signing = next((k for k in keys if k.retired_at is None), None)
            for key in keys:
                state = "retired " + key.retired_at.isoformat() if key.retired_at else "published"
                mark = " (signs)" if key is signing else ""
                self.stdout.write(f"{key.kid}  {key.alg}  created {key.created_at.isoformat()}  {state}{mark}")
        elif action == "retire":
            updated = SigningKey.objects.filter(kid=options["kid"], retired_at__isnull=True).update(
                retired_at=timezone.now()
            )
            if not updated:
                raise CommandError(f"No published signing key {options['kid']!r} (see `adcp_signing_key list`).")
            self.stdout.write(f"Retired {options['kid']}: no longer signs nor published.")
        else:
            self.stdout.write(json.dumps(jwks(), indent=2))
