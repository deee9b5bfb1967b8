"""Turning a brief as people write it — pasted text, an agency's JSON notes, the text of a PDF — into the
structured brief ``POST /bookings`` takes, plus what could not be found. Deterministic: the common phrasings of
budgets (currency, thousands separators, ``k``/``M``), flight dates (ISO ranges, ``March 1 - June 30, 2026``),
channel names, CPM targets and caps, objectives and the audience. Nothing is submitted: a person reviews it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

# The fields a brief needs, in the order a person fills them.
REQUIRED = ("name", "budget", "start_date", "end_date", "objectives")
MAX_TEXT = 200_000

# Words for our channels (matched as whole words, case-insensitively), most specific first.
CHANNEL_WORDS: tuple[tuple[str, str], ...] = (
    (r"connected[\s-]*tv|\bctv\b|\bott\b|streaming tv", "ctv"),
    (r"linear(?:[\s_-]*tv)?\b|broadcast tv", "linear_tv"),
    (r"mobile[\s_-]*app|app[\s-]*installs?|in-app", "mobile_app"),
    (r"digital[\s_-]*video|online video|pre-roll|outstream|\bolv\b", "video"),
    (r"\bdisplay\b|banners?\b", "display"),
    (r"\bnative\b", "native"),
    (r"\bdooh\b|out[\s-]*of[\s-]*home", "dooh"),
    (r"\bsocial\b", "social"),
    (r"\bperformance\b", "performance"),
    (r"\bbranding\b", "branding"),
)
UNBOOKABLE = (("audio", r"\baudio\b|podcasts?"), ("search", r"\bsearch\b|\bsem\b|\bppc\b"))

OBJECTIVE_WORDS: tuple[tuple[str, str], ...] = (
    (r"brand awareness|\bawareness\b", "brand awareness"),
    (r"\breach\b", "reach"),
    (r"video views|\bvcr\b|completion", "video views"),
    (r"conversions?|\bcpa\b|deposits?|reservations?", "conversions"),
    (r"lead generation|\bleads?\b", "lead generation"),
    (r"app installs?|\binstalls?\b|\bcpi\b", "app installs"),
    (r"engagement", "engagement"),
    (r"consideration", "consideration"),
    (r"\bsales\b", "sales"),
)

MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"  # noqa: E501
# Possessive (``*+``) where whitespace meets whitespace, so a long run of spaces cannot make a search quadratic.
_DASH = r"\s*+(?:-|\u2013|\u2014|to|through|until|thru)\s*+"
_ISO_RANGE = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}}){_DASH}(\d{{4}}-\d{{2}}-\d{{2}})", re.IGNORECASE)
_NAMED_RANGE = re.compile(
    rf"({_MONTH})\s++(\d{{1,2}})(?:st|nd|rd|th)?,?(?:\s*+(\d{{4}}))?{_DASH}(?:({_MONTH})\s*+)?(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s*+(\d{{4}}))?",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"(?P<pre>\$|usd\s?|us\$|€|eur\s?|£|gbp\s?)?\s?"
    r"(?P<num>\d{1,3}(?:[,.]\d{3}(?!\d))+(?:[.,]\d{1,2})?(?!\d)|\d+(?:[.,]\d+)?)"
    r"\s?(?P<mult>k\b|m\b|mm\b|mn\b|million\b|bn\b|billion\b|thousand\b)?"
    r"\s?(?P<post>usd\b|eur\b|gbp\b|dollars\b|euros?\b|€|£)?",
    re.IGNORECASE,
)
_MULTIPLIERS = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "mm": 1_000_000, "mn": 1_000_000}
_MULTIPLIERS |= {"million": 1_000_000, "bn": 1_000_000_000, "billion": 1_000_000_000}
_CURRENCY = {"$": "USD", "usd": "USD", "us$": "USD", "dollars": "USD", "€": "EUR", "eur": "EUR", "euro": "EUR"}
_CURRENCY |= {"euros": "EUR", "£": "GBP", "gbp": "GBP"}


@dataclass
class ParsedBrief:
    """A brief as far as it was found: ``brief`` holds only what was found, ``missing`` the required fields
    that were not, ``notes`` what a person should check."""

    brief: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parser: str = "deterministic"

    def as_dict(self) -> dict[str, Any]:
        return {"brief": self.brief, "missing": self.missing, "notes": self.notes, "parser": self.parser}


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str
    stated: bool = True  # a currency sign or code was written (not only a k/M multiplier)


def parse_money(text: str) -> list[Money]:
    """Every amount of money in ``text`` (a currency sign or word, or a ``k``/``M`` multiplier, makes it money),
    with thousands separators of either convention."""
    found = []
    for match in _MONEY.finditer(text):
        pre, post, mult = (match["pre"] or "").strip().lower(), (match["post"] or "").strip().lower(), match["mult"]
        if not (pre or post or mult):
            continue
        amount = _number(match["num"])
        if amount is None:
            continue
        if mult:
            amount *= _MULTIPLIERS[mult.lower()]
        found.append(Money(amount, _CURRENCY.get(pre or post, "USD"), stated=bool(pre or post)))
    return found


def _number(raw: str) -> Decimal | None:
    text = raw
    if re.fullmatch(r"\d{1,3}(\.\d{3})+(,\d{1,2})?", text):  # 1.234.567,89
        text = text.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d{1,2})?", text):  # 1,234,567.89
        text = text.replace(",", "")
    elif re.fullmatch(r"\d+,\d{1,2}", text):  # 12,50
        text = text.replace(",", ".")
    else:
        text = text.replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _date(month: str, day: str, year: str) -> date | None:
    try:
        return date(int(year), MONTHS[month.lower().rstrip(".")], int(day))
    except (KeyError, ValueError):
        return None


def parse_flight(text: str, *, today: date | None = None) -> tuple[date, date] | None:
    """The flight: the first ISO range, else the first named-month range (``March 1 - June 30, 2026``; without
    a year, the next such range from ``today``)."""
    labelled = _labelled(text, ("flight dates", "flight", "campaign period", "dates", "flight_dates"))
    for source in [*labelled, text]:
        iso = _ISO_RANGE.search(source)
        if iso:
            try:
                return date.fromisoformat(iso[1]), date.fromisoformat(iso[2])
            except ValueError:
                pass
        named = _NAMED_RANGE.search(source)
        if named:
            m1, d1, y1, m2, d2, y2 = named.groups()
            if y2 is None:
                if today is None:
                    continue
                y2 = str(today.year)
                guess = _date(m2 or m1, d2, y2)
                if guess is not None and guess < today:
                    y2 = str(today.year + 1)
            end = _date(m2 or m1, d2, y2)
            start = _date(
                m1, d1, y1 or (str(int(y2) - 1) if end and MONTHS[m1.lower().rstrip(".")] > end.month else y2)
            )
            if start and end:
                return start, end
    return None


def _labelled(text: str, labels: tuple[str, ...], *, following: int = 1) -> list[str]:
    """The values written after ``label:`` on its line, or on the ``following`` lines after a label alone."""
    lines = [line.strip() for line in text.splitlines()]
    values = []
    for index, line in enumerate(lines):
        bare = line.lstrip(" *-•\t")
        lowered = bare.lower()
        for label in labels:
            if not lowered.startswith(label):
                continue
            rest = bare[len(label) :]
            if rest.strip() and not re.match(r"\s*[:=\t]|\s{2,}", rest):
                continue  # "Audience reach and…" is prose, not the label "Audience"
            rest = rest.lstrip(" :=*-\t\"'").strip().rstrip('",')
            if rest:
                values.append(rest)
            else:
                values += [v for v in lines[index + 1 : index + 1 + following] if v]
    return values


def _cpm(text: str, words: tuple[str, ...]) -> Decimal | None:
    for word in words:
        pattern = re.compile(rf"{word}[^$\d]{{0,30}}\$?\s?(\d+(?:[.,]\d{{1,2}})?)", re.IGNORECASE)
        match = pattern.search(text)
        if match:
            return _number(match[1])
    return None


MAX_LINE = 2000


def parse_text(text: str, *, today: date) -> ParsedBrief:
    """The brief in ``text`` (prose, a PDF's text, or JSON notes)."""
    text = text[:MAX_TEXT]
    if not text.lstrip().startswith("{"):
        text = "\n".join(line[:MAX_LINE] for line in text.splitlines())
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            notes = json.loads(stripped)
        except json.JSONDecodeError:
            notes = None
        if isinstance(notes, dict):
            return _from_notes(notes, today=today)
    result = ParsedBrief()
    brief = result.brief
    name = next(iter(_labelled(text, ("campaign name", "campaign", "name", "brand"))), "")
    if not name:
        first = next((line.strip() for line in text.splitlines() if re.search(r"[A-Za-z]{3}", line)), "")
        # A first line that is a whole paragraph: its first sentence or clause names the campaign.
        name = re.split(r"(?<=[a-z0-9])[.;:!?](?:\s|$)|,\s", first, maxsplit=1)[0] if len(first) > 60 else first
    if name:
        brief["name"] = name[:100]
    _budget(text, result)
    flight = parse_flight(text, today=today)
    if flight and flight[1] < flight[0]:
        result.notes.append(f"the flight's end ({flight[1]}) is before its start ({flight[0]}): set the dates")
    elif flight:
        brief["start_date"], brief["end_date"] = flight[0].isoformat(), flight[1].isoformat()
        if flight[1] < today:
            result.notes.append(f"the flight ({flight[0]} to {flight[1]}) is in the past: set new dates")
    channels = _channels(text, result)
    if channels:
        brief["channels"] = channels
    objectives = [label for pattern, label in OBJECTIVE_WORDS if re.search(pattern, text, re.IGNORECASE)]
    if objectives:
        brief["objectives"] = objectives[:8]
    kpis = {}
    target = _cpm(text, (r"target[\s_]*cpm", r"cpm target", r"average cpm"))
    ceiling = _cpm(text, (r"max(?:imum)?[\s_]*cpm", r"cpm cap", r"cpm ceiling", r"not to exceed"))
    if target is not None:
        kpis["target_cpm_usd"] = float(target)
    if ceiling is not None:
        kpis["max_cpm_usd"] = float(ceiling)
    if kpis:
        brief["kpis"] = kpis
    audience = _audience(text)
    if audience:
        brief["target_audience"] = audience
    return _finish(result)


_NOT_MONEY = re.compile(r"impressions?|\bimps\b|\breach\b|\bviews\b|households|\busers\b|frequency|installs")


def _money_in(line: str) -> list[Money]:
    """The amounts of money on a line: those with a currency, and "40M"-like ones unless the line speaks of a
    volume ("Total impressions: 40M" is not a budget)."""
    volume = bool(_NOT_MONEY.search(line.lower()))
    return [m for m in parse_money(line) if m.stated or not volume]


def _budget(text: str, result: ParsedBrief) -> None:
    candidates: list[Money] = []
    for line in text.splitlines():
        lowered = line.lower()
        if "total" in lowered or "budget" in lowered:
            amounts = _money_in(line)
            if "total" in lowered:
                candidates += amounts
            elif amounts:
                candidates.append(max(amounts, key=lambda m: m.amount))
    # A label alone on its line ("Budget", then "$875,000/month ($3,500,000 total)") names the next line.
    for value in _labelled(text, ("budget", "total budget", "total"), following=2):
        candidates += _money_in(value)
    if not candidates:
        candidates = parse_money(" ".join(_labelled(text, ("spend",))))
    if not candidates:
        return
    best = max(candidates, key=lambda m: m.amount)
    if best.currency != "USD":
        result.notes.append(f"the budget is in {best.currency} ({best.amount:,}): enter it in USD")
        return
    result.brief["budget"] = str(best.amount.quantize(Decimal("0.01")))
    if len({m.amount for m in candidates}) > 1:
        result.notes.append(f"several budgets were found; the largest (${best.amount:,.2f}) was taken as the total")


def _channels(text: str, result: ParsedBrief) -> list[str]:
    found = []
    for pattern, channel in CHANNEL_WORDS:
        if re.search(pattern, text, re.IGNORECASE) and channel not in found:
            found.append(channel)
    for word, pattern in UNBOOKABLE:
        if re.search(pattern, text, re.IGNORECASE):
            result.notes.append(f"{word} is not a channel this buyer books: it was left out")
    return found


def _audience(text: str) -> dict[str, Any]:
    audience: dict[str, Any] = {}
    labelled_age = [re.match(r"(\d{2})\s?[-\u2013]\s?(\d{2})", v) for v in _labelled(text, ("age",))]
    ages = [m for m in labelled_age if m] or list(
        re.finditer(
            r"\b(?:adults?|ages?|aged|people|persons|[a-z]*s|men|women)\s++(\d{2})\s?[-\u2013]\s?(\d{2})\b", text
        )
    )
    for age in ages:
        if 13 <= int(age[1]) < int(age[2]) <= 99:
            audience["age"] = f"{age[1]}-{age[2]}"
            break
    income = re.search(r"(?:household income|hhi|income)[^$]{0,20}(\$\s?\d[\d,.]*\s?[kK]?\+?)", text, re.IGNORECASE)
    if income:
        audience["income"] = income[1].replace(" ", "")
    if re.search(r"\bnational\b|\bUS\b|United States|U\.S\.", text):
        audience["geo"] = ["US"]
    described = _labelled(text, ("target audience", "target_audience", "audience", "core audience"))
    if described:
        audience["description"] = described[0][:300]
    interests = _labelled(text, ("interests",))
    if interests:
        audience["interests"] = [i.strip(" .") for i in re.split(r",|;", interests[0]) if i.strip(" .")][:12]
    return audience


def _from_notes(notes: dict[str, Any], *, today: date) -> ParsedBrief:
    """An agency's JSON notes (``budget``, ``flight_dates``, ``target_cpm``…), or a brief already structured."""
    result = ParsedBrief()
    brief = result.brief
    name = notes.get("name") or " ".join(str(notes[k]) for k in ("brand", "id") if notes.get(k))
    if name:
        brief["name"] = str(name)[:100]
    budget = notes.get("budget")
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        amount = Decimal(str(budget))
        if amount.is_finite() and 0 < amount <= 1_000_000_000:
            brief["budget"] = str(amount.quantize(Decimal("0.01")))
        else:
            result.notes.append(f"the budget {budget} is not an amount this buyer takes: enter it")
    elif isinstance(budget, str):
        amounts = parse_money(budget) or parse_money(f"${budget}")
        if amounts and amounts[0].currency != "USD":
            result.notes.append(f"the budget is in {amounts[0].currency} ({amounts[0].amount:,}): enter it in USD")
        elif amounts and 0 < amounts[0].amount <= 1_000_000_000:
            brief["budget"] = str(amounts[0].amount.quantize(Decimal("0.01")))
    for key in ("start_date", "end_date"):
        if isinstance(notes.get(key), str):
            brief[key] = notes[key]
    if "start_date" not in brief and isinstance(notes.get("flight_dates"), str):
        flight = parse_flight(notes["flight_dates"], today=today)
        if flight:
            brief["start_date"], brief["end_date"] = flight[0].isoformat(), flight[1].isoformat()
    if brief.get("end_date") and brief["end_date"] < today.isoformat():
        result.notes.append(
            f"the flight ({brief.get('start_date')} to {brief['end_date']}) is in the past: set new dates"
        )
    channels = notes.get("channels")
    if isinstance(channels, list):
        found = _channels(" ".join(str(c) for c in channels).replace("_", " "), result)
        if found:
            brief["channels"] = found
    objectives = notes.get("objectives")
    if isinstance(objectives, list) and objectives:
        brief["objectives"] = [str(o)[:100] for o in objectives][:20]
    elif notes.get("vertical") or notes.get("preferred_package"):
        text = " ".join(str(v) for v in notes.values())
        found = [label for pattern, label in OBJECTIVE_WORDS if re.search(pattern, text, re.IGNORECASE)]
        if found:
            brief["objectives"] = found
    kpis = dict(notes["kpis"]) if isinstance(notes.get("kpis"), dict) else {}
    for ours, theirs in (("target_cpm_usd", "target_cpm"), ("max_cpm_usd", "max_cpm")):
        value = _number(str(notes.get(theirs))) if notes.get(theirs) is not None else None
        if value is not None:
            kpis[ours] = float(value)
    if kpis:
        brief["kpis"] = kpis
    audience = notes.get("target_audience")
    if isinstance(audience, dict):
        brief["target_audience"] = audience
    elif isinstance(audience, str) and audience:
        brief["target_audience"] = {"description": audience[:300], **_audience(audience)}
    for key in ("formats", "constraints"):
        if notes.get(key):
            brief[key] = notes[key]
    if notes.get("preferred_package"):
        result.notes.append(f"preferred package: {notes['preferred_package']} (search the sellers' media kits for it)")
    return _finish(result)


def _finish(result: ParsedBrief) -> ParsedBrief:
    result.missing = [name for name in REQUIRED if not result.brief.get(name)]
    return result
