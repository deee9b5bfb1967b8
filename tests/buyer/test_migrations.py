"""Migrations that have shipped stay as they are (a database migrated by a release must upgrade), and the models
never drift from the migrations."""

from __future__ import annotations

import itertools
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader

# Released in main: renaming, squashing or deleting one of these breaks every database that applied it.
SHIPPED = {
    "campaigns": [
        "0001_initial",
        "0002_pacing_negotiation_ledger_held_deals",
        "0003_deal_history_and_refusals",
        "0004_agents_decisions",
        "0005_plan_review",
        "0006_publisher_domain_dashboard_order_and_more",
        "0007_job_counts_and_versions",
        "0008_seller_tasks",
    ],
    "events": [
        "0001_initial",
        "0002_pacing_negotiation_deal_event_types",
        "0003_plan_review",
        "0004_booking_pending",
        "0005_budget_cuts",
    ],
    "sellers": [
        "0001_initial",
        "0002_seller_credentials_protocol_health",
        "0003_adcp_protocol",
        "0004_adcp_webhooks",
        "0005_request_signing",
        "0006_mutual_tls",
    ],
    "llm": ["0001_initial", "0002_gateway_breaker_and_stop_reason"],
    "health": ["0001_initial"],
    "pacing": ["0001_initial", "0002_budget_cuts"],
    "metrics": ["0001_initial"],
}


def test_shipped_migrations_are_still_there_in_order():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    for app, names in SHIPPED.items():
        for earlier, later in itertools.pairwise(names):
            assert (app, later) in graph.nodes, f"{app}.{later} was shipped and must stay"
            assert (app, earlier) in graph.forwards_plan((app, later)), f"{app}.{later} must come after {earlier}"


@pytest.mark.django_db
def test_the_models_match_the_migrations():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:
        pytest.fail(f"models differ from the migrations (exit {exit_.code}):\n{out.getvalue()}")
