"""The web process's serving layer: /health answered before Django, the API on a lean middleware stack with
JSON errors, the pages on the full one, and Django's WSGI handlers run in a thread pool under any ASGI server."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.conf import settings
from django.test import Client

from buyer.asgi import Dispatcher, ThreadedWSGI, build_application, health_body
from buyer.web import API_MIDDLEWARE, ApiHandler, build_wsgi, is_page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def application() -> Dispatcher:
    return build_application()


async def _request(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.request(method, path, **kwargs)


def request(app, method: str, path: str, **kwargs) -> httpx.Response:
    return asyncio.run(_request(app, method, path, **kwargs))


def test_health_is_answered_before_django_with_the_api_routes_body(application, client: Client):
    fast = request(application, "GET", "/health")
    documented = client.get("/health")  # the ninja route, which the OpenAPI schema describes
    assert fast.status_code == documented.status_code == 200
    assert fast.content == documented.content == health_body(settings.VERSION)
    assert fast.headers["content-type"].startswith("application/json")
    head = request(application, "HEAD", "/health")
    assert head.status_code == 200 and head.content == b""
    assert request(application, "POST", "/health").status_code == 405  # Django's route says what it allows


def test_the_api_runs_on_the_lean_stack_with_json_errors(application):
    listed = request(application, "GET", "/bookings?limit=2")
    assert listed.status_code == 200 and listed.json() == {"jobs": [], "total": 0}
    assert "set-cookie" not in listed.headers and "cookie" not in listed.headers.get("vary", "").lower()
    assert listed.headers["x-frame-options"] == "DENY" and listed.headers["x-content-type-options"] == "nosniff"
    missing = request(application, "GET", "/no-such-route")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    wrong_host = request(application, "GET", "/bookings", headers={"host": "evil.example"})
    assert wrong_host.status_code == 400 and wrong_host.json() == {"detail": "Bad request"}
    big = request(application, "POST", "/bookings", content=b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))
    assert big.status_code == 413 and "larger than" in big.json()["detail"]


def test_the_pages_keep_the_full_stack(application):
    login = request(application, "GET", "/app/login/")
    assert login.status_code == 200 and "csrftoken" in login.headers.get("set-cookie", "")
    missing = request(application, "GET", "/app/no-such-page/")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert request(application, "GET", "/static/css/app.css").status_code == 200
    for bare in ("/app", "/admin"):  # typed by hand: redirected to the pages, not a JSON 404 of the API
        moved = request(application, "GET", bare)
        assert moved.status_code == 301 and moved.headers["location"] == bare + "/"


def test_which_paths_are_pages():
    pages = ("/", "/app", "/admin", "/favicon.ico", "/redoc", "/app/", "/app/jobs/x/", "/admin/", "/static/a")
    assert all(is_page(p) for p in pages)
    assert not any(is_page(p) for p in ("/bookings", "/health", "/docs", "/openapi.json", "/application"))


def test_the_api_handler_builds_its_own_chain_and_leaves_the_settings_as_they_were():
    before = list(settings.MIDDLEWARE)
    handler = ApiHandler()
    assert settings.MIDDLEWARE == before != API_MIDDLEWARE
    assert handler._middleware_chain is not None


def test_a_request_body_is_read_through_a_receive_that_is_not_a_coroutine():
    # Granian's receive returns an awaitable of its own; a2wsgi needs a coroutine.
    class Awaitable:
        def __init__(self, message):
            self.message = message

        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return self.message

    def echo(environ, start_response):
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("content-type", "text/plain")])
        return [body[::-1]]

    app = ThreadedWSGI(echo, threads=2)
    sent: list[dict] = []

    async def main():
        scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"",
                 "headers": [(b"content-length", b"5")], "server": ("127.0.0.1", 80), "scheme": "http",
                 "http_version": "1.1", "root_path": ""}  # fmt: skip

        def receive():
            return Awaitable({"type": "http.request", "body": b"hello", "more_body": False})

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(main())
    assert sent[0]["status"] == 200 and b"".join(m.get("body", b"") for m in sent[1:]) == b"olleh"


def test_the_wsgi_entry_point_serves_the_same_routes():
    wsgi = build_wsgi()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
               "wsgi.input": __import__("io").BytesIO(b""), "wsgi.url_scheme": "http", "QUERY_STRING": ""}  # fmt: skip
    body = b"".join(wsgi(environ, start_response))
    assert statuses == ["200 OK"] and body == health_body(settings.VERSION)
