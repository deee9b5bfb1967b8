"""Booking and negotiation steps have their own queue, which a worker consumes first: on Redis a booking queued
after a plan step is still taken before it, so a burst's bookings do not wait behind every brief's planning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from buyer.celery import app
from buyer.stack import build_stack, worker_queues

REPO = Path(__file__).resolve().parents[2]


def test_steps_are_routed_by_what_they_do():
    route = app.amqp.router.route
    names = ("job_plan", "job_research", "job_negotiate", "job_book")
    assert {name: route({}, f"campaigns.tasks.{name}")["queue"].name for name in names} == {
        "job_plan": settings.CELERY_TASK_DEFAULT_QUEUE,
        "job_research": settings.CELERY_TASK_DEFAULT_QUEUE,
        "job_negotiate": settings.CELERY_BOOKING_QUEUE,
        "job_book": settings.CELERY_BOOKING_QUEUE,
    }
    assert route({}, "pacing.tasks.read_delivery")["queue"].name == settings.CELERY_PACING_QUEUE


def test_the_stack_worker_consumes_the_settings_queues_booking_first():
    assert worker_queues(os.environ) == (
        settings.CELERY_BOOKING_QUEUE,
        settings.CELERY_TASK_DEFAULT_QUEUE,
        settings.CELERY_PACING_QUEUE,
    )
    env = {"CELERY_QUEUE": "steps-x", "CELERY_PACING_QUEUE": "pacing-x", "CELERY_BOOKING_QUEUE": ""}
    argv = build_stack(env=env, sandbox_port=None).services["worker"].argv
    assert argv[argv.index("--queues") + 1] == "steps-x-booking,steps-x,pacing-x"


CONSUME = """
import json, os, django
django.setup()
from buyer.celery import app
from buyer.stack import worker_queues
from campaigns import tasks
booking, steps, _ = worker_queues(os.environ)
for n in range(2):
    tasks.job_plan.delay(f"plan-{n}")
for n in range(2):
    tasks.job_book.delay(f"book-{n}")
taken = []
with app.connection_for_read() as connection:
    queues = [app.amqp.queues[booking], app.amqp.queues[steps]]  # the order a worker's -Q gives
    def take(body, message):
        taken.append(message.headers["task"])
        message.ack()
    with connection.Consumer(queues, callbacks=[take], accept=["json"]):
        while len(taken) < 4:
            connection.drain_events(timeout=10)
print(json.dumps(taken))
"""


@pytest.mark.usefixtures("needs_redis")
def test_on_redis_bookings_are_taken_before_plan_steps_queued_earlier():
    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "CELERY_QUEUE": f"test-steps-{run}",
        "CELERY_PACING_QUEUE": f"test-pacing-{run}",
        "DJANGO_SETTINGS_MODULE": "buyer.settings",
    }
    env.pop("CELERY_BOOKING_QUEUE", None)
    done = subprocess.run(
        [sys.executable, "-c", CONSUME], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Round robin would alternate (book, plan, book, plan).
    book, plan = "campaigns.tasks.job_book", "campaigns.tasks.job_plan"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [book, book, plan, plan]
