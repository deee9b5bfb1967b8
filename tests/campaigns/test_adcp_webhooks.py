"""AdCP task webhooks: the seller notifies the buyer, signed, and the buyer polls the task at once.

The sandbox seller signs with the ``adcp`` library's own helpers; the buyer verifies without that library
(``buyer.sellers.webhooks``). A webhook only makes a task due: the deal comes from the seller's answer to
``get_task_status``, never from the webhook's body."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from buyer.sellers.models import Seller, SellerWebhook
from buyer.sellers.webhooks import push_notification_config, verify, webhook_secret
from campaigns.models import BookedDeal, JobStage, JobStatus
from tests.campaigns.test_adcp_sellers import approve_and_book, brief, poll
from tests.campaigns.test_adcp_sellers import sellers as sellers  # the fixture
from tests.campaigns.test_flow import new_job, run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning:adcp._null_clear"),
    pytest.mark.filterwarnings("ignore:HMAC-SHA256:DeprecationWarning"),
]


@pytest.fixture
def webhooks_on(settings):
    settings.ADCP_WEBHOOK_URL = "http://testserver"


def deliver_to(client):
    """A ``post`` for the sandbox's sender that hands each webhook to the buyer's Django app; the answers."""
    answers = []

    def post(url, *, content, headers, timeout):
        path = url.removeprefix("http://testserver")
        response = client.generic("POST", path, content, content_type="application/json", headers=headers)
        answers.append((path, json.loads(content), response.status_code, response.json()))
        return response

    return post, answers


def awaiting_job(sellers, **knobs):
    _iab, adcp, clock = sellers(approval_delay=600, **knobs)
    job = run(new_job(**brief()), JobStage.PLAN, JobStage.RESEARCH)
    job = approve_and_book(job)
    assert (job.status, job.stage) == (JobStatus.RUNNING, JobStage.AWAIT_SELLER), job.errors
    return job, adcp, clock


def test_a_signed_webhook_makes_the_buyer_read_the_task_now_and_book_the_deal(sellers, webhooks_on, client):
    job, adcp, clock = awaiting_job(sellers)
    seller = Seller.objects.get(protocol="adcp")
    # Each order asked the seller to notify us, signed with this seller's secret.
    tasks = list(adcp.state.sandbox.tasks.values())
    assert tasks and all(t.push["url"] == f"http://testserver/webhooks/adcp/{seller.pk}" for t in tasks)
    assert all(t.push["authentication"]["credentials"] == webhook_secret(seller.pk) for t in tasks)
    now = timezone.now() + timedelta(minutes=1)
    assert poll(now)["pending"] == len(tasks)  # polled once: not due again before the interval
    assert poll(now + timedelta(seconds=1))["polled"] == 0

    clock.advance(seconds=601)
    post, answers = deliver_to(client)
    sender = adcp.state.webhooks
    sender.post = post
    with time_machine.travel(now + timedelta(milliseconds=500), tick=False):  # after that poll, as in real time
        assert sender.send_due() == len(tasks)
    assert {a[2] for a in answers} == {200} and all(a[3]["status"] == "accepted" for a in answers)
    assert {a[1]["status"] for a in answers} == {"completed"}
    # The webhook booked nothing by itself…
    assert not BookedDeal.objects.filter(job=job, recommendation__seller_name="AdCP Sandbox").exists()
    # …it made the tasks due: the next beat, a second later, reads them from the seller and books.
    done = poll(now + timedelta(seconds=1))
    assert done["booked"] == len(tasks) and done["jobs_finished"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert sender.send_due() == 0  # acknowledged: not sent again


def test_a_replayed_or_forged_webhook_changes_nothing(sellers, webhooks_on, client):
    job, adcp, clock = awaiting_job(sellers)
    seller = Seller.objects.get(protocol="adcp")
    clock.advance(seconds=1)
    post, answers = deliver_to(client)
    sender = adcp.state.webhooks
    sender.post = post
    assert sender.send_due() >= 1  # "working"
    path, body, _, first = answers[0]
    assert first["status"] == "accepted"
    raw = json.dumps(body, separators=(",", ":")).encode()
    stamp = str(int(time.time()))

    def signed(payload: bytes, secret: str = webhook_secret(seller.pk), at: str = stamp) -> dict[str, str]:
        digest = hmac.new(secret.encode(), at.encode() + b"." + payload, hashlib.sha256).hexdigest()
        return {"X-AdCP-Signature": f"sha256={digest}", "X-AdCP-Timestamp": at}

    def send(payload: bytes, headers: dict[str, str], where: str = path):
        return client.generic("POST", where, payload, content_type="application/json", headers=headers)

    # The same notification again (the seller's retry, or a replay): recorded once, nothing done.
    again = send(raw, signed(raw))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate", "followed": 0})
    assert SellerWebhook.objects.filter(seller=seller).count() == len(answers)
    # Forged: another secret, a changed body, an old timestamp, no signature, another seller's path.
    assert send(raw, signed(raw, secret="not-the-secret")).status_code == 401
    changed = raw.replace(b'"working"', b'"completed"')
    assert send(changed, signed(raw)).status_code == 401
    old = str(int(time.time()) - 3600)
    assert send(raw, signed(raw, at=old)).status_code == 401
    assert send(raw, {}).status_code == 401
    other = Seller.objects.create(name="Other", base_url="http://127.0.0.1:9/", protocol="adcp")
    assert send(raw, signed(raw), where=f"/webhooks/adcp/{other.pk}").status_code == 401
    assert send(raw, signed(raw), where="/webhooks/adcp/999999").status_code == 404
    # Signed but not a notification: 422 naming the field.
    for bad, field in ((b"[1]", "object"), (b'{"task_id":"t","status":"working"}', "idempotency_key")):
        answer = send(bad, signed(bad))
        assert answer.status_code == 422 and field in answer.json()["detail"]
    # A fresh key for a task nobody waits on is accepted and follows nothing.
    unknown = json.dumps({"idempotency_key": "whk_unknown_task_0001", "task_id": "task-nope", "status": "completed"})
    answer = send(unknown.encode(), signed(unknown.encode()))
    assert answer.json() == {"status": "accepted", "followed": 0}
    assert not BookedDeal.objects.filter(job=job, recommendation__seller_name="AdCP Sandbox").exists()


def test_without_a_webhook_url_nothing_is_asked_of_the_seller(sellers):
    _job, adcp, _clock = awaiting_job(sellers)
    assert all(t.push is None for t in adcp.state.sandbox.tasks.values())
    assert push_notification_config(1, operation_id="op") is None


def test_the_buyers_verifier_accepts_the_adcp_librarys_own_signature(settings):
    from adcp.webhooks import create_mcp_webhook_payload, sign_legacy_webhook, to_wire_dict

    settings.ADCP_WEBHOOK_URL = "https://buyer.example.com/"
    config = push_notification_config(7, operation_id="buyer-op-1234567890")
    assert config["url"] == "https://buyer.example.com/webhooks/adcp/7"
    payload = create_mcp_webhook_payload(
        "task-1", "completed", "create_media_buy", result={"media_buy_id": "mb-1"}, operation_id="buyer-op-1234567890"
    )
    headers, body = sign_legacy_webhook(config["authentication"]["credentials"], to_wire_dict(payload))
    note = verify(seller_pk=7, headers=headers, body=body)
    assert (note.task_id, note.status, note.task_type) == ("task-1", "completed", "create_media_buy")
    assert note.idempotency_key == payload.idempotency_key
    assert webhook_secret(7) != webhook_secret(8)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-AdCP-Signature": "sha256=" + "0" * 64, "X-AdCP-Timestamp": "²"},
        {"X-AdCP-Signature": "sha256=" + "0" * 64, "X-AdCP-Timestamp": "1" + "0" * 400},
        {"X-AdCP-Signature": "sha256=" + "0" * 64, "X-AdCP-Timestamp": "9" * 5000},
        {"X-AdCP-Signature": "sha256=" + "é" * 64, "X-AdCP-Timestamp": "1700000000"},
        {"X-AdCP-Signature": "sha256=abc", "X-AdCP-Timestamp": "1700000000"},
    ],
    ids=["superscript-digit", "huge", "too-long", "non-ascii-signature", "short-signature"],
)
def test_malformed_signature_headers_are_a_401_never_a_500(client, headers):
    seller = Seller.objects.create(name="S", base_url="http://127.0.0.1:9/", protocol="adcp")
    answer = client.generic(
        "POST", f"/webhooks/adcp/{seller.pk}", b"{}", content_type="application/json", headers=headers
    )
    assert answer.status_code == 401, answer.content


def test_a_webhook_never_takes_a_line_over_from_a_poll_that_holds_it(sellers, webhooks_on, client):
    from buyer.adcp_webhooks import make_due
    from campaigns.models import Recommendation

    job, _adcp, _clock = awaiting_job(sellers)
    seller = Seller.objects.get(protocol="adcp")
    line = Recommendation.objects.filter(job=job, seller=seller).exclude(seller_task_id="").first()
    now = timezone.now()
    claimed_until = now + timedelta(minutes=2)
    Recommendation.objects.filter(pk=line.pk).update(seller_task_checked_at=claimed_until)
    assert make_due(seller.pk, line.seller_task_id, now) == 0
    line.refresh_from_db()
    assert line.seller_task_checked_at == claimed_until
    Recommendation.objects.filter(pk=line.pk).update(seller_task_checked_at=now - timedelta(seconds=5))
    assert make_due(seller.pk, line.seller_task_id, now) == 1
