from __future__ import annotations

from datetime import date

import pytest

from campaigns.models import BookedDeal, DealStatus, DealTransition
from campaigns.services import DEAL_TRANSITIONS, DealTransitionError, deal_transition
from tests.factories import RecommendationFactory

pytestmark = pytest.mark.django_db


def booked_deal() -> BookedDeal:
    line = RecommendationFactory()
    return BookedDeal.objects.create(
        recommendation=line,
        job=line.job,
        seller=line.seller,
        seller_url=line.seller_url,
        deal_id="DEMO-000000000001",
        quote_id=line.quote_id,
        product_id=line.product_id,
        product_name=line.product_name,
        channel=line.channel,
        deal_type="PD",
        impressions=1000,
        cpm_micros=10_000_000,
        cost_micros=10_000_000,
        flight_start=date(2030, 1, 1),
        flight_end=date(2030, 1, 31),
    )


def test_every_state_has_a_rule_and_terminal_states_have_no_successors():
    assert set(DEAL_TRANSITIONS) == set(DealStatus.values)
    for terminal in (DealStatus.COMPLETED, DealStatus.FAILED, DealStatus.CANCELLED, DealStatus.EXPIRED):
        assert DEAL_TRANSITIONS[terminal] == frozenset()


def test_allowed_transitions_are_recorded_with_their_reason():
    deal = booked_deal()
    deal_transition(deal=deal, to_status=DealStatus.DELIVERING, reason="first impressions served")
    deal_transition(deal=deal, to_status=DealStatus.COMPLETED, reason="flight ended")
    deal.refresh_from_db()
    assert deal.status == DealStatus.COMPLETED
    history = list(DealTransition.objects.filter(deal=deal).values_list("from_status", "to_status", "reason"))
    assert history == [
        ("booked", "delivering", "first impressions served"),
        ("delivering", "completed", "flight ended"),
    ]


def test_a_forbidden_transition_is_refused_and_leaves_no_trace():
    deal = booked_deal()
    deal_transition(deal=deal, to_status=DealStatus.CANCELLED, reason="buyer cancelled")
    with pytest.raises(DealTransitionError):
        deal_transition(deal=deal, to_status=DealStatus.DELIVERING, reason="too late")
    deal.refresh_from_db()
    assert deal.status == DealStatus.CANCELLED
    assert DealTransition.objects.filter(deal=deal).count() == 1
