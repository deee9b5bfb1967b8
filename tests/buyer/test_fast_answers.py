"""The fast reads' kept answers: given again only at the same version, within a byte budget, the least recently
given dropped first."""

from __future__ import annotations

from buyer.fastpath import Answers


def test_an_answer_is_given_only_at_its_version():
    answers = Answers()
    answers.put("list", ("epoch", 3), b"three")
    assert answers.get("list", ("epoch", 3)) == b"three"
    assert answers.get("list", ("epoch", 4)) is None
    assert answers.get("list", ("other epoch", 3)) is None
    assert (answers.hits, answers.misses) == (1, 2)


def test_the_least_recently_given_go_first_beyond_the_budget():
    answers = Answers(budget=800)
    for key in "abcd":
        answers.put(key, 1, key.encode() * 100)  # 100 bytes each (at most an eighth of the budget)
    assert answers.get("a", 1) is not None  # "a" given again: now the most recent
    answers.put("e", 1, b"e" * 100)
    answers.put("f", 1, b"f" * 100)
    answers.put("g", 1, b"g" * 100)
    answers.put("h", 1, b"h" * 100)
    answers.put("i", 1, b"i" * 100)  # 900 bytes: the least recently given ("b") goes
    assert answers.size <= 800
    assert answers.get("b", 1) is None and answers.get("a", 1) is not None
    answers.put("huge", 1, b"x" * 101)  # more than an eighth of the budget: given, not kept
    assert answers.version_of("huge") is None
    answers.put("a", 2, b"new")  # a new version replaces the old answer and its bytes
    assert answers.get("a", 2) == b"new" and answers.size == sum(len(body) for _, body in answers.entries.values())
