"""Input that passes a schema but would break the database is refused where it enters, naming the field: NUL
characters and unpaired surrogates (REST, MCP, dashboard forms), and numbers beyond what PostgreSQL counts with.
The OpenAPI schema lists every error answer with its body."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse, set_urlconf
from django.utils import timezone

from buyer.accounts.models import Role
from buyer.accounts.services import user_create
from buyer.mcp.server import build_mcp_server
from buyer.storable import MAX_REPORTED, REFUSED_TYPE, refused_text
from buyer.web import build_wsgi
from campaigns.models import BookingJob
from tests.mcp.conftest import call, error_text

pytestmark = pytest.mark.django_db

NUL = "\x00"
SURROGATE = "\ud800"
BIGINT_PAST = str(2**63)


def brief(**overrides):
    start = timezone.now().date() + timedelta(days=10)
    return {
        "name": "Holiday push",
        "objectives": ["brand awareness"],
        "budget": 60000,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=30)).isoformat(),
        "channels": ["ctv"],
        **overrides,
    }


def refused_locations(response) -> list[list]:
    assert response.status_code == 422, response.content
    return [item["loc"] for item in response.json()["detail"] if item["type"] == REFUSED_TYPE]


def test_the_walk_names_keys_values_and_list_items_and_stops_at_a_bound():
    value = {"a": ["ok", f"x{NUL}"], f"k{NUL}": 1, "deep": [[{"b": SURROGATE}]], "fine": "\U0001f600"}
    assert refused_text(value, ("body",)) == [("body", "a", 1), ("body", f"k{NUL}"), ("body", "deep", 0, 0, "b")]
    assert len(refused_text([NUL] * 500)) == MAX_REPORTED
    assert refused_text({"emoji": "\U0001f600", "accents": "é", "n": 5, "none": None}) == []


@pytest.mark.parametrize(
    "path, field",
    [
        ("/events", "flow_id"),
        ("/events", "session_id"),
        ("/events", "event_type"),
        ("/deals", "campaign_id"),
        ("/pacing/alerts", "campaign_id"),
        ("/bookings", "status"),
    ],
)
def test_a_nul_in_a_query_parameter_is_a_422_naming_it(client, path, field):
    assert refused_locations(client.get(path, {field: f"a{NUL}b"})) == [["query", field]]


def test_a_brief_with_a_nul_or_a_lone_surrogate_anywhere_is_refused_and_makes_no_job(client):
    body = brief(name=f"Holiday{NUL}", objectives=["reach", f"x{NUL}"], target_audience={"geo": [SURROGATE]})
    response = client.post("/bookings", {"brief": body}, content_type="application/json")
    assert refused_locations(response) == [
        ["body", "brief", "name"],
        ["body", "brief", "objectives", 1],
        ["body", "brief", "target_audience", "geo", 0],
    ]
    assert not BookingJob.objects.exists()
    assert client.post("/bookings", {"brief": brief()}, content_type="application/json").status_code == 202


def test_a_body_that_is_not_json_is_still_a_400(client):
    response = client.post("/bookings", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"] == "Cannot parse request body"


@pytest.mark.parametrize("path", ["/bookings", "/deals", "/pacing/alerts", "/pacing/campaigns"])
def test_an_offset_past_the_databases_integers_is_a_422(client, path):
    response = client.get(path, {"offset": BIGINT_PAST})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_the_lean_api_stack_refuses_them_too(settings):
    """The web process serves the API through its own middleware list (buyer.web), not settings.MIDDLEWARE."""
    settings.ALLOWED_HOSTS = ["testserver"]
    app = build_wsgi()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/events", "QUERY_STRING": "flow_id=%00", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
    }  # fmt: skip
    try:
        body = b"".join(app(environ, start_response))
    finally:
        set_urlconf(None)  # the API's URLconf stays set in this thread otherwise
    assert statuses == ["422 Unprocessable Entity"] and REFUSED_TYPE.encode() in body


def test_mcp_tools_refuse_them_naming_the_argument():
    server = build_mcp_server()
    text = error_text(call(server, "list_events", {"flow_id": NUL}))
    assert "Invalid arguments" in text and "flow_id" in text and "NUL" in text
    created = call(server, "create_booking", {"brief": brief(name=f"x{SURROGATE}")})
    assert "brief.name" in error_text(created)
    assert not BookingJob.objects.exists()


@pytest.fixture
def buyer():
    user_create(username="mia", email="mia@example.com", password="s3cret-pass-word", role=Role.ADMIN)
    client = Client()
    assert client.login(username="mia", password="s3cret-pass-word")
    return client


@pytest.mark.parametrize(
    "name, query",
    [
        ("campaigns:jobs", {"q": NUL}),
        ("campaigns:deals", {"campaign": NUL}),
        ("events:feed", {"flow_id": NUL}),
        ("pacing:overview", {"q": f"a{NUL}"}),
        ("sellers:list", {"q": NUL}),
        ("accounts:users", {"q": NUL}),
        ("apikeys:list", {"status": NUL}),
    ],
)
def test_a_page_address_holding_a_nul_gets_the_error_page_not_a_server_error(buyer, name, query):
    response = buyer.get(reverse(name), query)
    assert response.status_code == 400 and b"cannot be used (a NUL character)" in response.content
    assert buyer.get(reverse(name), {key: "fine" for key in query}).status_code == 200


def test_the_new_booking_form_refuses_a_nul_next_to_the_field(buyer):
    start = timezone.now().date() + timedelta(days=7)
    form = {
        "name": f"Holiday{NUL}push", "objectives": ["brand awareness"], "budget": "60000", "channels": ["ctv"],
        "start_date": start.isoformat(), "end_date": (start + timedelta(days=30)).isoformat(),
    }  # fmt: skip
    response = buyer.post(reverse("campaigns:job_new"), form)
    assert response.status_code == 200 and b"Null characters are not allowed" in response.content
    assert not BookingJob.objects.exists()


def test_the_openapi_schema_lists_every_error_answer_with_a_body(client):
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security"):
                assert {"401", "403", "429", "503"} <= set(responses), (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            for code, answer in responses.items():
                if int(code) >= 400:
                    assert answer["description"] and answer["content"]["application/json"]["schema"], (code, path)
            for parameter in operation.get("parameters", []):
                if parameter["schema"].get("type") == "integer" and parameter["in"] == "query":
                    assert parameter["schema"].get("maximum", 2**63) < 2**63, (path, parameter["name"])
    errors = schema["components"]["schemas"]
    assert errors["ValidationErrorOut"]["properties"]["detail"]["type"] == "array"
    assert errors["ErrorOut"]["required"] == ["detail"]


def test_a_body_nested_past_what_json_parses_is_the_routes_400_not_a_500(client):
    response = client.post("/bookings", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400


def test_a_dashboard_form_posted_with_a_nul_in_a_field_without_a_form_class_gets_the_error_page(buyer):
    response = buyer.post(
        reverse("campaigns:jobs"), f"note=held{NUL}deal", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and b"cannot be used (a NUL character)" in response.content
