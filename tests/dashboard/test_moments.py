"""Dates and times are written one way on every page, in the reader's zone, and never break inside a day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.template import Context, Template
from django.utils import timezone

from buyer.sellers.types import Product

NB = "\N{NO-BREAK SPACE}"


def render(text: str, **context: object) -> str:
    return Template(text).render(Context(context))


def test_a_moment_is_a_time_element_in_the_readers_zone():
    moment = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        html = render("{{ m|when }}", m=moment)
        seconds = render('{{ m|when:"seconds" }}', m=moment + dt.timedelta(seconds=7))
        from_json = render("{{ m|when }}", m="2026-11-20T03:00:00+00:00")
    assert html == f'<time datetime="2026-11-20T12:00:00+09:00">Nov{NB}20,{NB}2026, 12:00{NB}JST</time>'
    assert seconds.endswith(f">Nov{NB}20,{NB}2026, 12:00:07{NB}JST</time>")
    assert from_json == html  # an ISO string kept in JSON reads the same


def test_days_and_flights_keep_their_parts_together():
    assert render("{{ d|day }}", d=dt.date(2026, 12, 8)) == f'<time datetime="2026-12-08">Dec{NB}8,{NB}2026</time>'
    assert render('{{ d|day:"weekday" }}', d=dt.date(2026, 12, 8)).endswith(f">Tue,{NB}Dec{NB}8,{NB}2026</time>")
    same_year = render("{{ a|flight:b }}", a=dt.date(2026, 12, 1), b=dt.date(2026, 12, 31))
    assert ">Dec\N{NO-BREAK SPACE}1</time> \N{EN DASH} <time" in same_year and f"Dec{NB}31,{NB}2026" in same_year
    across = render("{{ a|flight:b }}", a=dt.date(2026, 12, 8), b=dt.date(2027, 1, 22))
    assert f"Dec{NB}8,{NB}2026" in across and f"Jan{NB}22,{NB}2027" in across


def test_nothing_is_written_for_what_is_not_a_date():
    assert render("{{ m|when }}{{ d|day }}{{ a|flight:b }}", m=None, d="soon", a=None, b=None) == ""
    assert render("{{ m|when }}", m="not a time") == ""


def _product(**raw: object) -> Product:
    return Product(
        product_id="p1",
        name="Homepage",
        description="",
        seller_organization_id="pub-meridian-news",
        inventory_type="display",
        ad_formats=("display",),
        delivery_type="Guaranteed",
        pricing_model="cpm",
        base_cpm=None,
        floor_cpm=None,
        available_impressions=None,
        minimum_impressions=0,
        deal_types=("PD",),
        raw=raw,
    )


def test_a_publisher_is_named_by_the_domain_the_seller_gives_and_nothing_else():
    assert _product(domain=" meridiannews.example ").publisher_domain == "meridiannews.example"
    assert _product(domain="evil\x00.example\n").publisher_domain == "evil.example"
    assert _product(domain=None).publisher_domain == ""
    assert _product(domain={"name": "x"}).publisher_domain == ""
    assert _product().publisher_domain == ""
    assert len(_product(domain="a" * 500).publisher_domain) == 200
