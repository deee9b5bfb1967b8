"""RFC 9421 signed orders at AdCP sellers that demand them: the buyer's key, stored encrypted, published as a
JWKS, given to the client of each seller set to sign; the sandbox seller verifies with the library's verifier."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from buyer.sellers.models import Seller, SigningKey
from buyer.sellers.signing import jwks, key_create, public_jwk
from campaigns.models import JobStage, JobStatus
from tests.campaigns.test_adcp_sellers import adcp_lines, booked, brief
from tests.campaigns.test_adcp_sellers import sellers as sellers  # the fixture
from tests.campaigns.test_flow import new_job, run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning:adcp._null_clear"),
]


def demanding(sellers, *, sign: bool):
    """Both sandbox sellers, the AdCP one demanding orders signed by the buyer's published key."""
    _iab, adcp, _clock = sellers(signed_by={"buyer": jwks()})
    Seller.objects.filter(protocol="adcp").update(sign_requests=sign)
    return adcp


def test_orders_are_signed_for_a_seller_that_demands_it_and_book(sellers):
    key_create()
    adcp = demanding(sellers, sign=True)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    deals = booked(job, "AdCP Sandbox")
    assert deals, job.errors
    assert deals and {d.deal_id for d in deals} == set(adcp.state.sandbox.media_buys)


def test_an_unsigned_order_is_refused_by_that_seller_as_a_seller_error_and_the_other_seller_books(sellers):
    key_create()
    adcp = demanding(sellers, sign=False)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    assert not adcp.state.sandbox.media_buys and booked(job, "IAB Sandbox")
    assert all(line.status == "booking_failed" and "sign" in line.status_reason for line in adcp_lines(job))
    assert any("signature" in str(e).lower() for e in job.errors), job.errors


def test_signing_asked_for_without_a_key_says_how_to_make_one(sellers):
    adcp = demanding(sellers, sign=True)
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert not adcp.state.sandbox.media_buys
    assert any("adcp_signing_key create" in str(e) for e in job.errors), job.errors


def test_the_key_is_stored_encrypted_published_as_the_adcp_librarys_jwk_and_rotates(client):
    from adcp.signing.keygen import pem_to_adcp_jwk

    first = key_create()
    pem = first.private_pem()
    assert b"PRIVATE KEY" in pem and "PRIVATE" not in first.private_ciphertext
    assert public_jwk(pem, kid=first.kid) == pem_to_adcp_jwk(pem, kid=first.kid, purpose="request-signing")
    answer = client.get("/.well-known/jwks.json")
    assert answer.status_code == 200 and answer.json() == {"keys": [first.public_jwk]}
    assert "d" not in answer.json()["keys"][0]  # the public half only

    out = StringIO()
    call_command("adcp_signing_key", "create", stdout=out)
    second = SigningKey.objects.exclude(pk=first.pk).get()
    assert second.kid in out.getvalue()
    # The newest signs; the older stays published until retired.
    from buyer.sellers.signing import active_key

    assert active_key()[1] == second.kid
    assert [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]] == [second.kid, first.kid]
    call_command("adcp_signing_key", "retire", first.kid, stdout=StringIO())
    assert [k["kid"] for k in json.loads(_out("jwks"))["keys"]] == [second.kid]
    assert "(signs)" in _out("list") and "retired" in _out("list")
    with pytest.raises(Exception, match="No published signing key"):
        call_command("adcp_signing_key", "retire", first.kid, stdout=StringIO())


def _out(*args):
    out = StringIO()
    call_command("adcp_signing_key", *args, stdout=out)
    return out.getvalue()
