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
    for terminal in (DealStatus.COMPLETED, DealStatus.CANCELLED, DealStatus.EXPIRED):
        assert DEAL_TRANSITIONS[terminal] == frozenset()
    # A failed deal (refused by a person) has one way on: its cancellation at the seller.
    assert DEAL_TRANSITIONS[DealStatus.FAILED] == frozenset({DealStatus.CANCELLED})


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


def test_many_moves_at_once_make_only_the_allowed_ones_from_the_state_each_deal_is_still_in():
    from campaigns.services import DealMove, deal_transition_many

    moving, stale, refused = (BookedDealFactory(status=DealStatus.BOOKED) for _ in range(3))
    DealTransition.objects.all().delete()
    BookedDeal.objects.filter(pk=stale.pk).update(status=DealStatus.CANCELLED)  # moved on meanwhile

    made = deal_transition_many(
        [
            DealMove(moving, DealStatus.BOOKED, DealStatus.DELIVERING, "first impressions", "delivering"),
            DealMove(stale, DealStatus.BOOKED, DealStatus.DELIVERING, "first impressions"),
            DealMove(refused, DealStatus.BOOKED, DealStatus.NEGOTIATING, "not a move the machine knows"),
        ]
    )

    assert [m.deal.pk for m in made] == [moving.pk]
    statuses = dict(BookedDeal.objects.values_list("pk", "status"))
    assert statuses == {moving.pk: "delivering", stale.pk: "cancelled", refused.pk: "booked"}
    assert BookedDeal.objects.get(pk=moving.pk).seller_status == "delivering"
    (audit,) = DealTransition.objects.all()
    assert (audit.deal_id, audit.from_status, audit.to_status, audit.actor) == (
        moving.pk,
        "booked",
        "delivering",
        "system",
    )
