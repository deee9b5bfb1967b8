"""Counts in the product's sentences: "1 line", "4 lines", never "4 line(s)"."""

from __future__ import annotations

from buyer.words import count, verb


def test_counts_are_written_as_sentences_say_them():
    assert (count(1, "line"), count(4, "line"), count(1_200, "deal")) == ("1 line", "4 lines", "1,200 deals")
    assert count("3", "quote") == "3 quotes" and count(None, "seller") == "None sellers"
    assert count(1, "refused deal") == "1 refused deal" and (verb(1, "is", "are"), verb(2, "is", "are")) == (
        "is",
        "are",
    )
