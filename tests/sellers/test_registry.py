"""registry.client_for: the right client per seller, with that seller's credential only."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buyer.sandbox import create_app
from buyer.sellers import registry
from buyer.sellers.client import SellerRestClient, fetch_catalogs
from buyer.sellers.errors import SellerError
from buyer.sellers.guard import GuardedSellerClient
from buyer.sellers.models import CredentialScheme, Protocol, Seller
from buyer.sellers.registry import client_for, identity_for, record_health
from buyer.sellers.services import seller_set_credential
from buyer.sellers.types import QuoteRequest
from tests.conftest import free_port, serve_in_thread
from tests.factories import SellerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def two_sellers() -> Iterator[dict[str, str]]:
    """Seller A grants the agency tier to "k1" only; seller B the seat tier to "k2" only. Unknown keys get 401."""
    apps = {"a": create_app(api_keys={"k1": "agency"}), "b": create_app(catalog="default", api_keys={"k2": "seat"})}
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve_in_thread(app)) for name, app in apps.items()}


def _quote(client: GuardedSellerClient, key: str, identity=None):
    product = next(p for p in client.list_products() if p.base_cpm is not None and "PD" in p.deal_types)
    start = date.today() + timedelta(days=10)
    return client.request_quote(
        QuoteRequest(
            idempotency_key=key,
            product_id=product.product_id,
            deal_type="PD",
            impressions=max(product.minimum_impressions, 500_000),
            flight_start=start,
            flight_end=start + timedelta(days=30),
            buyer_identity=identity,
        )
    )


def test_each_sellers_credential_reaches_that_seller_only(two_sellers):
    a = SellerFactory(base_url=two_sellers["a"], agency_id="agency-42")
    b = SellerFactory(base_url=two_sellers["b"], seat_id="seat-9", credential_scheme=CredentialScheme.BEARER)
    seller_set_credential(seller=a, plaintext="k1")
    seller_set_credential(seller=b, plaintext="k2")
    # Fresh rows, as a worker loads them: nothing carried over in memory from set_credential.
    sellers = {str(s.pk): s for s in Seller.objects.filter(pk__in=[a.pk, b.pk])}
    clients = {key: client_for(seller) for key, seller in sellers.items()}

    # Both at once from worker threads, as the research step does; a key sent to the wrong seller is a 401.
    catalogs = fetch_catalogs(clients, max_workers=2)
    assert all(isinstance(result, list) and result for result in catalogs.values()), catalogs
    with ThreadPoolExecutor(max_workers=4) as pool:
        tiers = dict(
            pool.map(
                lambda key: (sellers[key].base_url, _quote(clients[key], f"t:{key}", identity_for(sellers[key]))),
                list(clients),
            )
        )
    assert tiers[a.base_url].buyer_tier == "agency"
    assert tiers[b.base_url].buyer_tier == "seat"
    for client in clients.values():
        client.close()


def test_a_seller_without_a_credential_is_public_and_a_wrong_key_is_refused_by_the_seller(two_sellers):
    public = SellerFactory(base_url=two_sellers["a"])
    assert _quote(client_for(public), "t:public").buyer_tier == "public"

    public.set_credential("k2")  # seller B's key, misfiled under A
    public.save()
    with pytest.raises(SellerError) as refused:
        _quote(client_for(public), "t:misfiled")
    assert refused.value.status == 401


def test_the_seller_timeout_and_scheme_configure_the_rest_client(monkeypatch, settings):
    made: list[dict[str, Any]] = []

    class Recording(SellerRestClient):
        def __init__(self, base_url: str, **options: Any) -> None:
            made.append({"base_url": base_url, **options})
            super().__init__(base_url, **options)

    monkeypatch.setattr(registry, "SellerRestClient", Recording)
    settings.SELLER_TIMEOUT_SECONDS = 10.0
    settings.SELLER_MAX_RETRIES = 1
    quick = SellerFactory(timeout_seconds=2.5, credential_scheme=CredentialScheme.BEARER)
    seller_set_credential(seller=quick, plaintext="tok")
    client_for(quick).close()
    client_for(SellerFactory()).close()
    assert made[0] == {
        "base_url": quick.base_url,
        "credential": "tok",
        "credential_scheme": "bearer",
        "timeout": 2.5,
        "max_retries": 1,
    }
    assert (made[1]["credential"], made[1]["timeout"]) == (None, 10.0)


class _FakeMcpClient:
    made: list[dict[str, Any]] = []

    def __init__(self, base_url: str, *, credential, credential_scheme, timeout, max_retries, transport):
        self.base_url = base_url
        _FakeMcpClient.made.append(
            {
                "credential": credential,
                "credential_scheme": credential_scheme,
                "timeout": timeout,
                "max_retries": max_retries,
                "transport": transport,
            }
        )

    def list_products(self, **kwargs: Any) -> list:
        return ["from mcp"]

    def close(self) -> None:
        pass


@pytest.fixture
def fake_mcp(monkeypatch) -> type[_FakeMcpClient]:
    module = types.ModuleType("buyer.sellers.mcp_client")
    module.SellerMcpClient = _FakeMcpClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "buyer.sellers.mcp_client", module)
    _FakeMcpClient.made = []
    return _FakeMcpClient


def test_an_mcp_seller_gets_the_mcp_client_with_its_transport_and_credential(fake_mcp, settings):
    settings.SELLER_MAX_RETRIES = 3
    seller = SellerFactory(protocol=Protocol.MCP, mcp_transport="sse", timeout_seconds=4)
    seller_set_credential(seller=seller, plaintext="mcp-key")
    client = client_for(seller)
    assert client.list_products() == ["from mcp"] and client.protocol == "mcp"
    assert fake_mcp.made == [
        {"credential": "mcp-key", "credential_scheme": "api_key", "timeout": 4.0, "max_retries": 3, "transport": "sse"}
    ]
    with pytest.raises(SellerError) as unsupported:
        client.media_kit()  # not something this MCP client offers
    assert unsupported.value.code == "unsupported_operation"
    client.close()
    seller.refresh_from_db()
    assert (seller.calls_total, seller.errors_total) == (1, 0)


def test_without_the_mcp_client_an_mcp_seller_refuses_calls_and_the_rest_still_work(monkeypatch, two_sellers):
    monkeypatch.setitem(sys.modules, "buyer.sellers.mcp_client", None)  # importing it raises ImportError
    mcp_seller, rest_seller = SellerFactory(protocol=Protocol.MCP), SellerFactory(base_url=two_sellers["b"])
    results = fetch_catalogs({"mcp": client_for(mcp_seller), "rest": client_for(rest_seller)})
    assert isinstance(results["mcp"], SellerError) and results["mcp"].code == "mcp_unavailable"
    assert isinstance(results["rest"], list) and results["rest"]


@pytest.fixture
def card_server() -> Iterator[dict[str, Any]]:
    """A seller that serves only an agent card; ``state["protocols"]`` is what it advertises."""
    state: dict[str, Any] = {"protocols": ["opendirect21", "mcp"], "hits": 0, "status": 200}

    async def agent_card(request: Request) -> JSONResponse:
        state["hits"] += 1
        return JSONResponse(
            {"name": "card-only", "capabilities": {"protocols": state["protocols"]}}, status_code=state["status"]
        )

    app = Starlette(routes=[Route("/.well-known/agent.json", agent_card)])
    with serve_in_thread(app) as url:
        state["url"] = url
        yield state


def test_auto_discovers_mcp_from_the_agent_card_and_caches_it_for_a_day(card_server, fake_mcp):
    seller = SellerFactory(base_url=card_server["url"], protocol=Protocol.AUTO)
    assert client_for(seller).protocol == "mcp"
    seller.refresh_from_db()
    assert seller.discovered_protocol == "mcp" and seller.protocol_discovered_at is not None

    card_server["protocols"] = ["opendirect21"]
    assert client_for(seller).protocol == "mcp"  # cached
    assert card_server["hits"] == 1
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1)):
        assert client_for(seller).protocol == "rest"
    assert card_server["hits"] == 2


def test_auto_rediscovers_when_calls_keep_failing(card_server, fake_mcp):
    seller = SellerFactory(base_url=card_server["url"], protocol=Protocol.AUTO)
    client = client_for(seller)
    assert client.protocol == "mcp"
    client.breaker.record(ok=False, latency_ms=5.0, error="connection_error (transport): refused")
    record_health([client])
    seller.refresh_from_db()
    assert seller.protocol_discovered_at is None and seller.discovered_protocol == "mcp"

    card_server["protocols"] = []
    assert client_for(seller).protocol == "rest"
    assert card_server["hits"] == 2


def test_auto_keeps_what_it_knew_when_the_agent_card_cannot_be_fetched(settings, fake_mcp):
    settings.SELLER_TIMEOUT_SECONDS = 1
    checked = timezone.now() - timedelta(days=2)
    seller = SellerFactory(
        base_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: connection refused
        protocol=Protocol.AUTO,
        discovered_protocol="mcp",
        protocol_discovered_at=checked,
    )
    client = client_for(seller)
    assert client.protocol == "mcp"
    client.close()
    seller.refresh_from_db()
    assert (seller.discovered_protocol, seller.protocol_discovered_at) == ("mcp", None)  # retried next time
    assert (seller.calls_total, seller.errors_total) == (1, 1)


def test_a_seller_without_an_agent_card_is_spoken_to_over_rest(card_server):
    card_server["status"] = 404
    seller = SellerFactory(base_url=card_server["url"], protocol=Protocol.AUTO)
    assert client_for(seller).protocol == "rest"
    seller.refresh_from_db()
    assert seller.discovered_protocol == "rest"
