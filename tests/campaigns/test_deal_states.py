from __future__ import annotations

import pytest

from campaigns.models import BookedDeal, DealStatus, DealTransition
from campaigns.services import DEAL_TRANSITIONS, DealTransitionError, deal_transition
from tests.factories import BookedDealFactory

pytestmark = pytest.mark.django_db


def booked_deal() -> BookedDeal:
    return BookedDealFactory(deal_id="DEMO-000000000001")


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
