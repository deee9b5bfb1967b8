"""GET /sellers and the media-kit proxy routes, over real HTTP against sandbox sellers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from buyer.sandbox import create_app
from buyer.sandbox.catalog import build_catalog
from buyer.sellers.models import Seller
from tests.conftest import free_port, serve_in_thread

pytestmark = pytest.mark.django_db

PACKAGES = build_catalog("default").packages
CTV_PACKAGE = next(p for p in PACKAGES if p.inventory_type == "ctv")


@pytest.fixture(scope="module")
def seller_urls() -> Iterator[dict[str, str]]:
    apps = {"default": create_app(catalog="default"), "failing": create_app(catalog="default", failure_rate=1.0)}
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve_in_thread(app)) for name, app in apps.items()}


@pytest.fixture(autouse=True)
def _seller_settings(settings):
    settings.SELLER_ENDPOINTS = []
    settings.SELLER_MAX_RETRIES = 0
    settings.SELLER_TIMEOUT_SECONDS = 2
    # Every test here makes a handful of calls to failing sellers; the circuit breaker has its own tests.
    settings.SELLER_BREAKER_FAILURES = 1000


@pytest.fixture
def seller(seller_urls) -> Seller:
    return Seller.objects.create(name="Sandbox", base_url=seller_urls["default"])


def media_kit_routes(seller_id: object) -> list[tuple[str, str]]:
    base = f"/sellers/{seller_id}/media-kit"
    return [("GET", base), ("GET", f"{base}/packages"), ("GET", f"{base}/packages/pkg-1"), ("POST", f"{base}/search")]


def call(client, method: str, path: str):
    return client.generic(method, path, '{"query": "ctv"}', content_type="application/json")


# -- GET /sellers ---------------------------------------------------------------------------------------------


def test_the_seller_list_shows_enabled_sellers_and_nothing_secret(client):
    Seller.objects.create(name="Zeta", base_url="http://zeta.example/")
    Seller.objects.create(name="Alpha", base_url="https://agent:s3cret@alpha.example:8443/seller?api_key=s3cret#x")
    Seller.objects.create(name="Off", base_url="http://off.example", enabled=False)

    response = client.get("/sellers")

    assert response.status_code == 200
    sellers = response.json()["sellers"]
    assert [s["name"] for s in sellers] == ["Alpha", "Zeta"]
    assert set(sellers[0]) == {"seller_id", "name", "base_url", "protocol", "enabled"}
    assert sellers[0]["base_url"] == "https://alpha.example:8443/seller"
    assert sellers[0]["protocol"] == "rest" and sellers[0]["enabled"] is True
    assert sellers[0]["seller_id"] == str(Seller.objects.get(name="Alpha").pk)
    assert "s3cret" not in response.content.decode()


def test_include_disabled_adds_the_disabled_sellers(client):
    Seller.objects.create(name="On", base_url="http://on.example")
    Seller.objects.create(name="Off", base_url="http://off.example", enabled=False)

    sellers = client.get("/sellers", {"include_disabled": "true"}).json()["sellers"]

    assert [(s["name"], s["enabled"]) for s in sellers] == [("Off", False), ("On", True)]


# -- media kit proxy ------------------------------------------------------------------------------------------


def test_the_media_kit_is_the_sellers_own_answer(client, seller):
    response = client.get(f"/sellers/{seller.pk}/media-kit")

    assert response.status_code == 200
    kit = response.json()
    assert kit["total_packages"] == len(PACKAGES)
    assert [p["package_id"] for p in kit["all_packages"]] == [p.package_id for p in PACKAGES]
    assert {p["package_id"] for p in kit["featured"]} == {p.package_id for p in PACKAGES if p.is_featured}


def test_the_packages_and_one_package_are_proxied(client, seller):
    packages = client.get(f"/sellers/{seller.pk}/media-kit/packages").json()["packages"]
    one = client.get(f"/sellers/{seller.pk}/media-kit/packages/{CTV_PACKAGE.package_id}")

    assert [p["package_id"] for p in packages] == [p.package_id for p in PACKAGES]
    assert one.status_code == 200
    assert one.json()["name"] == "Connected TV Package"
    assert one.json()["price_range"].endswith("CPM")


def test_a_package_the_seller_does_not_know_is_404(client, seller):
    for package_id in ("pkg-00000000", "..", "%2E%2E"):
        response = client.get(f"/sellers/{seller.pk}/media-kit/packages/{package_id}")
        assert response.status_code == 404, package_id
        assert response.json() == {"detail": "Package not found"}


def test_a_media_kit_search_returns_the_sellers_results(client, seller):
    response = client.post(
        f"/sellers/{seller.pk}/media-kit/search", {"query": "live sports"}, content_type="application/json"
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert results and results[0]["package_id"] == CTV_PACKAGE.package_id
    nothing = client.post(
        f"/sellers/{seller.pk}/media-kit/search", {"query": "zzzz"}, content_type="application/json"
    ).json()
    assert nothing == {"results": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "query"), ({"query": "  "}, "query"), ({"query": "ctv", "buyer_tier": "advertiser"}, "buyer_tier")],
)
def test_a_bad_media_kit_search_is_refused_naming_the_field(client, seller, body, field):
    response = client.post(f"/sellers/{seller.pk}/media-kit/search", body, content_type="application/json")

    assert response.status_code == 422
    assert [".".join(str(p) for p in e["loc"]) for e in response.json()["detail"]] == [f"body.payload.{field}"]


@pytest.mark.parametrize("seller_id", ["999999", "abc", "1.0", "99999999999999999999999"])
def test_an_unknown_seller_is_404(client, seller_id):
    for method, path in media_kit_routes(seller_id):
        response = call(client, method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "Seller not found"}


def test_a_disabled_seller_is_not_contacted(client, seller):
    seller.enabled = False
    seller.save(update_fields=["enabled"])

    for method, path in media_kit_routes(seller.pk):
        assert call(client, method, path).json() == {"detail": "Seller not found"}, (method, path)


def test_a_failing_seller_is_502_with_its_error_code_only(client, seller_urls):
    failing = Seller.objects.create(name="Flaky", base_url=seller_urls["failing"])

    for method, path in media_kit_routes(failing.pk):
        response = call(client, method, path)
        assert response.status_code == 502, (method, path)
        assert response.json() == {"detail": "Seller Flaky failed: http_503"}


def test_an_unreachable_seller_is_502(client):
    dead = Seller.objects.create(name="Dead", base_url=f"http://127.0.0.1:{free_port()}")

    response = client.get(f"/sellers/{dead.pk}/media-kit")

    assert response.status_code == 502
    assert response.json() == {"detail": "Seller Dead failed: connection_error"}


# -- auth -----------------------------------------------------------------------------------------------------


def test_every_seller_route_needs_the_api_key_when_one_is_configured(client, settings, seller):
    settings.API_KEY = "k"
    routes = [("GET", "/sellers"), ("POST", "/products/search"), *media_kit_routes(seller.pk)]

    for method, path in routes:
        response = call(client, method, path)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": "Invalid or missing API key"}

    assert client.get("/sellers", headers={"X-API-Key": "k"}).status_code == 200
    assert client.get(f"/sellers/{seller.pk}/media-kit", headers={"X-API-Key": "k"}).status_code == 200
