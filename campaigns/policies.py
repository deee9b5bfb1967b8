"""Deterministic policies for every step of the booking flow: pure functions, no I/O, no model calls.

They are the whole decision-making when no LLM is configured, and the rails that any LLM proposal is
checked against later: budgets and CPM ceilings are enforced here and again before booking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from buyer.sellers.money import CENT, cost_for
from buyer.sellers.types import Product, Quote

# Inventory each planning channel buys, in order of preference.
CHANNEL_INVENTORY: dict[str, tuple[str, ...]] = {
    "branding": ("display", "video"),
    "ctv": ("ctv",),
    "mobile_app": ("mobile_app",),
    "performance": ("native", "display"),
    "social": ("native",),
    "display": ("display",),
    "video": ("video",),
    "native": ("native",),
    "linear_tv": ("linear_tv",),
    "dooh": ("dooh",),
}

# Relative weight of each channel before objectives nudge it.
BASE_WEIGHTS: dict[str, Decimal] = {
    "branding": Decimal(40),
    "ctv": Decimal(25),
    "performance": Decimal(20),
    "mobile_app": Decimal(15),
    "social": Decimal(10),
    "display": Decimal(20),
    "video": Decimal(25),
    "native": Decimal(15),
    "linear_tv": Decimal(25),
    "dooh": Decimal(10),
}
DEFAULT_CHANNELS = ("branding", "ctv", "performance", "mobile_app")

CHANNEL_PURPOSE: dict[str, str] = {
    "branding": "reach and awareness at efficient CPMs on display and video",
    "ctv": "premium big-screen video for awareness",
    "performance": "native and display placements that drive action",
    "mobile_app": "in-app placements for mobile audiences",
    "social": "native in-feed placements",
    "display": "display placements",
    "video": "online video",
    "native": "native placements",
    "linear_tv": "linear TV spots",
    "dooh": "digital out-of-home screens",
}

# Objectives (matched as lower-case substrings) that favour channels.
OBJECTIVE_BOOSTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("awareness", ("branding", "ctv", "video", "linear_tv")),
    ("reach", ("branding", "ctv", "display", "linear_tv", "dooh")),
    ("video", ("ctv", "video")),
    ("conversion", ("performance", "native")),
    ("performance", ("performance", "native")),
    ("sales", ("performance",)),
    ("lead", ("performance",)),
    ("install", ("mobile_app",)),
    ("app", ("mobile_app",)),
    ("engagement", ("social", "native", "mobile_app")),
)
OBJECTIVE_BOOST = Decimal("1.5")

# Share of a channel's budget given to its first, second, third… ranked products.
RANK_SHARES = (Decimal(50), Decimal(30), Decimal(20), Decimal(15), Decimal(10))
IMPRESSION_STEP = 1000


@dataclass(frozen=True)
class Allocation:
    channel: str
    amount: Decimal
    percentage: Decimal
    rationale: str


@dataclass(frozen=True)
class BriefTerms:
    """What the policies need from a brief, already validated."""

    budget: Decimal
    channels: tuple[str, ...]
    objectives: tuple[str, ...]
    start_date: Any
    end_date: Any
    max_cpm: Decimal | None = None
    target_cpm: Decimal | None = None
    formats: tuple[str, ...] = ()
    exclude_publishers: tuple[str, ...] = ()
    audience: frozenset[str] = frozenset()  # the audience plan's keywords, matched against product targeting


@dataclass(frozen=True)
class Candidate:
    """A product worth quoting for one channel, with the impressions its budget share buys."""

    seller_key: str
    channel: str
    product: Product
    impressions: int
    planned_cost: Decimal
    target_cpm: Decimal | None
    deal_type: str
    rank: int
    rationale: str
    model_note: str = ""  # why a channel specialist (a model) chose it, in its words


@dataclass(frozen=True)
class Skip:
    seller_key: str
    product_id: str
    product_name: str
    channel: str
    reason: str


@dataclass(frozen=True)
class QuotedLine:
    candidate: Candidate
    quote: Quote

    @property
    def cost(self) -> Decimal:
        return cost_for(self.quote.impressions, self.quote.final_cpm)


@dataclass
class Selection:
    chosen: list[QuotedLine] = field(default_factory=list)
    dropped: list[tuple[QuotedLine, str]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.cost for line in self.chosen), Decimal(0))


def kpi_cpm(kpis: Mapping[str, Any], *names: str) -> Decimal | None:
    """The first positive CPM among ``names`` in the brief's KPIs (``max_cpm_usd`` before legacy ``max_cpm``)."""
    for name in names:
        value = kpis.get(name)
        if value is None or isinstance(value, bool):
            continue
        try:
            amount = Decimal(str(value))
        except ArithmeticError:
            continue
        if amount.is_finite() and amount > 0:
            return amount
    return None


def allocate_budget(budget: Decimal, channels: Sequence[str], objectives: Iterable[str]) -> list[Allocation]:
    """Split ``budget`` across ``channels`` (a default set when empty). Amounts are cents and add up exactly."""
    chosen = list(dict.fromkeys(channels)) or list(DEFAULT_CHANNELS)
    wanted = " ".join(objectives).lower()
    weights: dict[str, Decimal] = {}
    reasons: dict[str, list[str]] = {}
    for channel in chosen:
        weight = BASE_WEIGHTS.get(channel, Decimal(10))
        hits = [keyword for keyword, favoured in OBJECTIVE_BOOSTS if keyword in wanted and channel in favoured]
        if hits:
            weight *= OBJECTIVE_BOOST
        weights[channel] = weight
        reasons[channel] = hits
    total_weight = sum(weights.values())
    allocations: list[Allocation] = []
    remaining = budget.quantize(CENT, rounding=ROUND_DOWN)
    for index, channel in enumerate(chosen):
        if index == len(chosen) - 1:
            amount = remaining  # the last channel takes the rounding remainder, so the sum is exact
        else:
            amount = (budget * weights[channel] / total_weight).quantize(CENT, rounding=ROUND_DOWN)
        remaining -= amount
        percentage = (amount / budget * 100).quantize(Decimal("0.01")) if budget else Decimal(0)
        why = CHANNEL_PURPOSE.get(channel, channel)
        if reasons[channel]:
            why += f"; weighted up for the objectives ({', '.join(reasons[channel])})"
        if not channels:
            why += "; default channel mix because the brief named no channels"
        allocations.append(Allocation(channel, amount, percentage, why[0].upper() + why[1:]))
    return allocations


def allocate_shares(budget: Decimal, shares: Sequence[tuple[str, Decimal, str]]) -> list[Allocation]:
    """Allocations for ``(channel, percentage, rationale)`` shares (an agent's split): the percentages scaled
    to sum to 100, the amounts in cents adding up exactly to ``budget`` (the largest share takes the rounding
    remainder). Channels with no share are left out."""
    funded = [(c, p, r) for c, p, r in shares if p > 0]
    if not funded:
        raise ValueError("no channel has a share")
    total = sum(p for _, p, _ in funded)
    largest = max(range(len(funded)), key=lambda i: funded[i][1])
    remaining = budget.quantize(CENT, rounding=ROUND_DOWN)
    amounts = [(budget * p / total).quantize(CENT, rounding=ROUND_DOWN) for _, p, _ in funded]
    amounts[largest] += remaining - sum(amounts)
    return [
        Allocation(channel, amount, (amount / budget * 100).quantize(Decimal("0.01")) if budget else Decimal(0), why)
        for (channel, _, why), amount in zip(funded, amounts, strict=True)
    ]


def choose_deal_type(product: Product) -> str | None:
    offered = {d.upper() for d in product.deal_types} or {"PD"}
    for preferred in ("PG", "PD", "PA"):
        if preferred in offered:
            return preferred
    return None


# Words of an audience that say nothing about which inventory reaches it.
_AUDIENCE_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "the",
        "of",
        "in",
        "on",
        "for",
        "with",
        "to",
        "at",
        "by",
        "from",
        "all",
        "any",
        "who",
        "are",
        "is",
        "adults",
        "people",
        "users",
        "households",
        "audience",
        "audiences",
        "target",
        "consumers",
        "customers",
        "men",
        "women",
        "male",
        "female",
        "gender",
        "age",
        "ages",
        "income",
        "hhi",
        "us",
        "usa",
    ]
)


def audience_keywords(target_audience: Mapping[str, Any], segments: Iterable[str] = ()) -> frozenset[str]:
    """The words of a brief's audience (interests, description, segments) that product targeting may match:
    lower-case, three letters or more, without words that say nothing about inventory."""
    texts: list[str] = [*segments]
    for key in ("interests", "description", "segments", "behaviors", "behaviours", "in_market"):
        value = target_audience.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list | tuple):
            texts += [str(v) for v in value]
    words = {w for text in texts for w in re.findall(r"[a-z][a-z-]{2,}", text.lower())}
    return frozenset(words - _AUDIENCE_STOPWORDS)


def audience_match(product: Product, keywords: frozenset[str]) -> list[str]:
    """The audience keywords a product's targeting, tags or name speak to (sorted)."""
    if not keywords:
        return []
    raw = product.raw or {}
    ext = raw.get("ext")
    if not isinstance(ext, dict):
        ext = {}
    parts: list[str] = [product.name]
    for source in (raw.get("content_targeting"), ext.get("audience_capabilities"), raw.get("tags"), ext.get("tags")):
        if isinstance(source, dict):
            parts += [str(v) for values in source.values() for v in (values if isinstance(values, list) else [values])]
        elif isinstance(source, list):
            parts += [str(v) for v in source]
    words = set(re.findall(r"[a-z][a-z-]{2,}", " ".join(parts).lower()))
    return sorted(keywords & words)


def rank_candidates(
    products: Mapping[str, Sequence[Product]],
    allocation: Allocation,
    terms: BriefTerms,
    *,
    max_candidates: int,
    taken: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[list[Candidate], list[Skip]]:
    """Filter every seller's products for one channel, rank them and plan impressions for the best few."""
    inventory = CHANNEL_INVENTORY.get(allocation.channel, (allocation.channel,))
    eligible: list[tuple[str, Product]] = []
    skips: list[Skip] = []
    excluded = {p.lower() for p in terms.exclude_publishers}
    for seller_key, catalog in products.items():
        for product in catalog:
            if product.inventory_type not in inventory or (seller_key, product.product_id) in taken:
                continue
            reason = _ineligible(product, terms, excluded)
            if reason:
                skips.append(Skip(seller_key, product.product_id, product.name, allocation.channel, reason))
            else:
                eligible.append((seller_key, product))

    matches = {(key, p.product_id): audience_match(p, terms.audience) for key, p in eligible}

    def sort_key(item: tuple[str, Product]) -> tuple:
        seller_key, product = item
        price = product.base_cpm if product.base_cpm is not None else Decimal("Infinity")
        # Within a channel, prefer its primary inventory type, then what speaks to the audience, then the lowest
        # price, then big guaranteed supply.
        return (
            inventory.index(product.inventory_type),
            -len(matches[(seller_key, product.product_id)]),
            price,
            product.delivery_type.lower() not in {"guaranteed", "exclusive"},
            -(product.available_impressions or 0),
            seller_key,
            product.product_id,
        )

    eligible.sort(key=sort_key)
    top = eligible[:max_candidates]
    shares = RANK_SHARES[: len(top)]
    share_total = sum(shares, Decimal(0))
    candidates: list[Candidate] = []
    for position, ((seller_key, product), share) in enumerate(zip(top, shares, strict=True), start=1):
        assert product.base_cpm is not None
        budget_share = (allocation.amount * share / share_total).quantize(CENT, rounding=ROUND_DOWN)
        target = _target_cpm(product, terms)
        # Plan at the target when the seller may meet it; below its floor it will not (its quote stays at the
        # list price, and only negotiation can bring it down), so plan what the list price buys.
        below_floor = target is not None and product.floor_cpm is not None and target < product.floor_cpm
        plan_cpm = target if target is not None and target < product.base_cpm and not below_floor else product.base_cpm
        impressions = _impressions_for(budget_share, plan_cpm)
        if product.available_impressions is not None:
            impressions = min(impressions, product.available_impressions // IMPRESSION_STEP * IMPRESSION_STEP)
        if impressions <= 0 or impressions < product.minimum_impressions:
            skips.append(
                Skip(
                    seller_key,
                    product.product_id,
                    product.name,
                    allocation.channel,
                    f"budget share ${budget_share:,} buys {impressions:,} impressions, below the seller's "
                    f"minimum of {product.minimum_impressions:,}",
                )
            )
            continue
        deal_type = choose_deal_type(product)
        assert deal_type is not None
        rationale = (
            f"Ranked {position} of {len(eligible)} eligible {'/'.join(inventory)} products for "
            f"{allocation.channel}: list CPM ${product.base_cpm:,.2f}, {product.delivery_type.lower()} delivery, "
            + (
                f"{product.available_impressions:,} impressions available. "
                if product.available_impressions is not None
                else "availability not stated by the seller. "
            )
            + f"Planned {impressions:,} "
            f"impressions for ${budget_share:,.2f} ({share / share_total * 100:.0f}% of the channel budget)."
        )
        if matches[(seller_key, product.product_id)]:
            rationale += (
                f" Its targeting speaks to the audience ({', '.join(matches[(seller_key, product.product_id)])})."
            )
        candidates.append(
            Candidate(
                seller_key=seller_key,
                channel=allocation.channel,
                product=product,
                impressions=impressions,
                planned_cost=cost_for(impressions, plan_cpm),
                target_cpm=target,
                deal_type=deal_type,
                rank=position,
                rationale=rationale,
            )
        )
    return candidates, skips


def _ineligible(product: Product, terms: BriefTerms, excluded: set[str]) -> str | None:
    if product.base_cpm is None:
        return "no list price (price on request); the buyer never invents a CPM"
    if product.pricing_model.lower() != "cpm":
        return f"priced by {product.pricing_model}, only CPM pricing is bought"
    if choose_deal_type(product) is None:
        return f"offers no PG, PD or PA deal type (it lists {', '.join(product.deal_types)})"
    if terms.formats and not set(terms.formats) & {f.lower() for f in product.ad_formats}:
        return f"formats {', '.join(product.ad_formats)} not among the requested {', '.join(terms.formats)}"
    if excluded and (product.seller_organization_id.lower() in excluded or product.name.lower() in excluded):
        return "publisher excluded by the brief"
    if terms.max_cpm is not None and product.floor_cpm is not None and product.floor_cpm > terms.max_cpm:
        return f"seller floor ${product.floor_cpm:,.2f} is above the max CPM ${terms.max_cpm:,.2f}"
    if product.available_impressions is not None and product.available_impressions < product.minimum_impressions:
        return "not enough impressions available"
    return None


def _target_cpm(product: Product, terms: BriefTerms) -> Decimal | None:
    """The CPM to ask for: the brief's target, else the ceiling when the list price is above it."""
    assert product.base_cpm is not None
    if terms.target_cpm is not None:
        if terms.max_cpm is not None:
            return min(terms.target_cpm, terms.max_cpm)
        return terms.target_cpm
    if terms.max_cpm is not None and product.base_cpm > terms.max_cpm:
        return terms.max_cpm
    return None


def _impressions_for(budget: Decimal, cpm: Decimal) -> int:
    if cpm <= 0:
        return 0
    raw = int((budget * 1000 / cpm).to_integral_value(rounding=ROUND_DOWN))
    return raw // IMPRESSION_STEP * IMPRESSION_STEP


def quote_problem(line: QuotedLine, terms: BriefTerms) -> str | None:
    """Why a quote cannot be recommended, or None. Checked on the seller's figures, never on ours."""
    quote = line.quote
    if quote.status != "available":
        return f"quote status is {quote.status}"
    if not quote.raw.get("availability", {}).get("inventory_available", True):
        return "seller reports the inventory is not available for the flight"
    if quote.product_id != line.candidate.product.product_id:
        return "seller quoted a different product"
    if quote.final_cpm <= 0:
        return "seller quoted a non-positive CPM"
    if terms.max_cpm is not None and quote.final_cpm > terms.max_cpm:
        return f"quoted CPM ${quote.final_cpm:,.2f} is above the max CPM ${terms.max_cpm:,.2f}"
    if quote.impressions <= 0:
        return "seller quoted no impressions"
    return None


def select_within_budget(
    lines: Sequence[QuotedLine],
    allocations: Sequence[Allocation],
    budget: Decimal,
    *,
    max_line: Decimal | None = None,
    max_seller_share_pct: Decimal = Decimal(100),
) -> Selection:
    """Keep the best-ranked lines whose cost fits their channel's budget and the brief's budget, no line above
    ``max_line`` (the platform's per-line maximum), and no seller holding more than ``max_seller_share_pct`` of
    the budget (a concentration cap)."""
    channel_budget = {a.channel: a.amount for a in allocations}
    spent: dict[str, Decimal] = dict.fromkeys(channel_budget, Decimal(0))
    at_seller: dict[str, Decimal] = {}
    seller_cap = budget * max_seller_share_pct / 100
    selection = Selection()
    total = Decimal(0)
    for line in sorted(lines, key=lambda ln: (ln.candidate.rank, ln.candidate.channel, ln.candidate.seller_key)):
        channel = line.candidate.channel
        cost = line.cost
        seller = line.candidate.seller_key
        if max_line is not None and cost > max_line:
            selection.dropped.append((line, f"cost ${cost:,.2f} is above the per-line maximum ${max_line:,.2f}"))
        elif max_seller_share_pct < 100 and at_seller.get(seller, Decimal(0)) + cost > seller_cap:
            selection.dropped.append(
                (
                    line,
                    f"cost ${cost:,.2f} would put more than {max_seller_share_pct:g} % of the budget at one seller",
                )
            )
        elif channel not in channel_budget:
            selection.dropped.append((line, f"channel {channel} has no budget"))
        elif spent[channel] + cost > channel_budget[channel]:
            selection.dropped.append(
                (line, f"cost ${cost:,.2f} would exceed the {channel} budget ${channel_budget[channel]:,.2f}")
            )
        elif total + cost > budget:
            selection.dropped.append((line, f"cost ${cost:,.2f} would exceed the brief budget ${budget:,.2f}"))
        else:
            spent[channel] += cost
            at_seller[seller] = at_seller.get(seller, Decimal(0)) + cost
            total += cost
            selection.chosen.append(line)
    return selection


def plan_findings(lines: Sequence[Any], terms: BriefTerms, allocations: Mapping[str, Decimal]) -> list[str]:
    """The execution check: what in the lines about to be shown for approval (``Recommendation`` rows) breaks
    the brief — a channel it has no budget for, a CPM above its ceiling or above the seller's quote, a channel
    or the whole over budget, an excluded publisher, a product twice. Empty when the plan keeps the brief."""
    findings: list[str] = []
    spent: dict[str, Decimal] = {}
    seen: set[tuple[str, str]] = set()
    excluded = {p.lower() for p in terms.exclude_publishers}
    for line in lines:
        name = f"{line.product_name} ({line.seller_name})"
        if line.channel not in allocations:
            findings.append(f"{name} is on {line.channel}, which the plan gives no budget")
        if terms.max_cpm is not None and line.cpm > terms.max_cpm:
            findings.append(f"{name} costs ${line.cpm:,.2f} CPM, above the max CPM ${terms.max_cpm:,.2f}")
        if line.quoted_cpm_micros is not None and line.cpm_micros > line.quoted_cpm_micros:
            findings.append(f"{name} is priced above the seller's own quote")
        if line.publisher and line.publisher.lower() in excluded:
            findings.append(f"{name} is from the excluded publisher {line.publisher}")
        key = (line.seller_url, line.product_id)
        if key in seen:
            findings.append(f"{name} is recommended twice")
        seen.add(key)
        spent[line.channel] = spent.get(line.channel, Decimal(0)) + line.cost
    for channel, amount in spent.items():
        if channel in allocations and amount > allocations[channel]:
            findings.append(f"{channel} lines cost ${amount:,.2f}, above its ${allocations[channel]:,.2f} budget")
    total = sum(spent.values(), Decimal(0))
    if total > terms.budget:
        findings.append(f"the lines cost ${total:,.2f}, above the ${terms.budget:,.2f} budget")
    return findings
