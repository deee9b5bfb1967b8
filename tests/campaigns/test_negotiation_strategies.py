"""The negotiation strategies as pure functions: their bounds hold against any seller, and each behaves as named."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.negotiation import Action, Round, Strategy, next_move, terms_for, worth_negotiating

D = Decimal
prices = st.decimals(min_value=D("0.50"), max_value=D("80"), places=2)


def play(strategy, terms, seller):
    """Run a negotiation against ``seller`` (a function of the buyer's offer and the round number)."""
    rounds: tuple[Round, ...] = ()
    moves = []
    for _ in range(terms.max_rounds + 2):
        move = next_move(strategy, terms, rounds)
        moves.append(move)
        if move.action != Action.COUNTER:
            break
        rounds += (Round(move.price, seller(move.price, len(rounds) + 1)),)
    return moves, rounds


@settings(max_examples=300, deadline=None)
@given(
    strategy=st.sampled_from([Strategy.THRESHOLD, Strategy.ADAPTIVE, Strategy.COMPETITIVE]),
    quoted=prices,
    target=prices,
    ceiling=st.one_of(st.none(), prices),
    competing=st.lists(prices, max_size=4),
    max_rounds=st.integers(min_value=1, max_value=6),
    answers=st.lists(prices, min_size=6, max_size=6),  # any seller: rising, above its quote, erratic
)
def test_no_strategy_ever_offers_or_accepts_above_its_walk_away_or_the_ceiling(
    strategy, quoted, target, ceiling, competing, max_rounds, answers
):
    terms = terms_for(
        strategy, quoted=quoted, target=target, ceiling=ceiling, competing=tuple(competing), max_rounds=max_rounds
    )
    moves, rounds = play(strategy, terms, lambda offer, n: answers[n - 1])

    assert terms.walk_away <= quoted and (ceiling is None or terms.walk_away <= ceiling)
    offers = [m.price for m in moves if m.action == Action.COUNTER]
    assert all(p <= terms.walk_away for p in offers)
    assert offers == sorted(offers)  # never retreats
    assert len(offers) <= max_rounds
    final = moves[-1]
    assert final.action in (Action.ACCEPT, Action.WALK_AWAY)
    if final.action == Action.ACCEPT:  # the seller's standing price: its last counter, or its quote
        assert final.price <= terms.walk_away and final.price == (rounds[-1].seller_price if rounds else quoted)


THREE_PCT = D("0.03")


def conceding_seller(quoted, floor, step=THREE_PCT):
    """The reference seller's way: about 3 % off its quote a round, never below its floor, accepting at it."""

    def answer(offer, n):
        counter = max(floor, (quoted * (1 - step * n)).quantize(D("0.01")))
        return offer if offer >= counter else counter

    return answer


def test_threshold_opens_at_the_target_concedes_by_steps_and_closes_a_deal():
    terms = terms_for(Strategy.THRESHOLD, quoted=D(38), target=D(28), ceiling=D(40), max_rounds=4)
    moves, _ = play(Strategy.THRESHOLD, terms, conceding_seller(D(38), D(34)))

    # The seller: $36.86, $35.72, $34.58; our next offer ($35.50) would pass its price, so we take its price.
    assert [m.price for m in moves if m.action == Action.COUNTER] == [D(28), D("30.50"), D(33)]
    assert moves[-1].action == Action.ACCEPT and moves[-1].price == D("34.58")


def test_threshold_walks_away_when_the_seller_never_comes_within_the_walk_away_price():
    terms = terms_for(Strategy.THRESHOLD, quoted=D(38), target=D(20), ceiling=D(30), max_rounds=3)
    moves, _ = play(Strategy.THRESHOLD, terms, lambda offer, n: D(37))

    assert moves[-1].action == Action.WALK_AWAY and "3 rounds without" in moves[-1].reason


def test_adaptive_matches_the_sellers_concessions_and_walks_away_when_it_stops_moving():
    terms = terms_for(Strategy.ADAPTIVE, quoted=D(40), target=D(30), ceiling=None, max_rounds=6)
    seller = iter([D(38), D(37), D(37), D(37)])
    moves, _ = play(Strategy.ADAPTIVE, terms, lambda offer, n: next(seller))

    assert [m.price for m in moves if m.action == Action.COUNTER] == [D(30), D(32), D(33)]
    assert moves[-1].action == Action.WALK_AWAY and "stopped moving" in moves[-1].reason


def test_competitive_opens_at_the_best_rival_and_never_pays_more_than_their_median():
    terms = terms_for(
        Strategy.COMPETITIVE, quoted=D(40), target=D(20), ceiling=D(45), competing=(D(31), D(33), D(36)), max_rounds=3
    )
    assert terms.walk_away == D(33)
    moves, _ = play(Strategy.COMPETITIVE, terms, lambda offer, n: D(34))

    offers = [m.price for m in moves if m.action == Action.COUNTER]
    assert offers[0] == D(31) and max(offers) <= D(33)
    assert moves[-1].action == Action.WALK_AWAY
    cheap = play(Strategy.COMPETITIVE, terms, lambda offer, n: D("32.50"))[0][-1]
    assert (cheap.action, cheap.price) == (Action.ACCEPT, D("32.50"))


def test_a_quote_is_negotiated_only_above_the_target_and_with_room_under_the_ceiling():
    assert worth_negotiating(terms_for(Strategy.THRESHOLD, quoted=D(30), target=D(30), ceiling=None))
    assert worth_negotiating(terms_for(Strategy.THRESHOLD, quoted=D(38), target=D(35), ceiling=D(34)))
    assert worth_negotiating(terms_for(Strategy.THRESHOLD, quoted=D(38), target=D(30), ceiling=D(40))) == ""
    assert next_move(Strategy.NONE, terms_for(Strategy.NONE, quoted=D(38), target=D(30), ceiling=None), ()).action == (
        Action.WALK_AWAY
    )


def test_on_the_sellers_last_round_its_standing_price_is_taken_rather_than_risking_a_rejection():
    terms = terms_for(Strategy.THRESHOLD, quoted=D(38), target=D(10), ceiling=D(40), max_rounds=5)
    rounds = (Round(D(10), D(30), rounds_remaining=2), Round(D("17.00"), D(29), rounds_remaining=1))

    move = next_move(Strategy.THRESHOLD, terms, rounds)

    assert (move.action, move.price) == (Action.ACCEPT, D(29)) and "last round" in move.reason
