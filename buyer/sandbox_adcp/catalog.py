"""The AdCP sandbox seller's seeded catalogs: products, their pricing options and creative formats.

Two named catalogs exist (``default`` and ``premium-video``) so that tests running several sandbox sellers side
by side see different inventory. Everything is deterministic: ids are readable slugs fixed here, prices are
``Decimal`` and only become floats on the wire (AdCP prices are JSON numbers).

Between them the pricing options cover every shape a buyer must handle: a fixed CPM (``fixed_price``), an
auction CPM with only a ``floor_price``, viewable CPM, cost per completed view and a flat rate; products are
``guaranteed`` or ``non_guaranteed``. Formats are the AdCP 3.2 canonical ``format_options``; each also knows the named
(v1) formats it corresponds to, which the handler hands the library's legacy projection for 3.0 buyers.

Publisher domains are under ``.example`` (RFC 2606): nothing here names a real site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adcp.types import Product
from adcp.types.domains.core.canonical_product import CanonicalProduct

CATALOG_NAMES: tuple[str, ...] = ("default", "premium-video")
CURRENCY = "USD"
#: The reference creative agent that defines the named (v1) formats the products point at.
CREATIVE_AGENT_URL = "https://creative.adcontextprotocol.org/"

SELLER_NAMES: Mapping[str, str] = {
    "default": "Sandbox AdCP Sales Agent (mixed inventory)",
    "premium-video": "Sandbox AdCP Sales Agent (premium video)",
}

_REPORTING: dict[str, Any] = {
    "available_reporting_frequencies": ["hourly", "daily"],
    "expected_delay_minutes": 0,
    "timezone": "UTC",
    "supports_webhooks": False,
    "available_metrics": ["impressions", "spend", "clicks", "completed_views", "completion_rate"],
    "date_range_support": "date_range",
}


@dataclass(frozen=True)
class PricingSpec:
    """One pricing option. A fixed option has ``fixed``; an auction option only a ``floor``."""

    option_id: str
    model: str  # cpm | vcpm | cpcv | flat_rate
    fixed: Decimal | None = None
    floor: Decimal | None = None
    min_spend: Decimal | None = None

    @property
    def auction(self) -> bool:
        return self.fixed is None

    def wire(self) -> dict[str, Any]:
        option: dict[str, Any] = {
            "pricing_option_id": self.option_id,
            "pricing_model": self.model,
            "currency": CURRENCY,
        }
        if self.fixed is not None:
            option["fixed_price"] = float(self.fixed)
        if self.floor is not None:
            option["floor_price"] = float(self.floor)
        if self.min_spend is not None:
            option["min_spend_per_package"] = float(self.min_spend)
        return option


@dataclass(frozen=True)
class FormatSpec:
    """One canonical format option: its kind, its parameters and the named v1 formats it corresponds to."""

    kind: str
    params: Mapping[str, Any]
    v1_ids: tuple[str, ...]

    def wire(self) -> dict[str, Any]:
        return {"format_kind": self.kind, "params": dict(self.params)}

    def legacy_refs(self) -> list[dict[str, str]]:
        """The named (v1) formats this option corresponds to, for buyers on AdCP 3.0."""
        return [{"agent_url": CREATIVE_AGENT_URL, "id": v1_id} for v1_id in self.v1_ids]


def _sizes(*sizes: tuple[int, int]) -> list[dict[str, int]]:
    return [{"width": w, "height": h} for w, h in sizes]


def image(*sizes: tuple[int, int]) -> FormatSpec:
    return FormatSpec(
        "image",
        {
            "sizes": _sizes(*sizes),
            "image_formats": ["jpg", "png", "gif"],
            "max_file_size_kb": 200,
            "composition_model": "deterministic",
        },
        tuple(f"display_{w}x{h}_image" for w, h in sizes),
    )


def html5(*sizes: tuple[int, int]) -> FormatSpec:
    return FormatSpec(
        "html5",
        {"sizes": _sizes(*sizes), "max_initial_load_kb": 200, "composition_model": "deterministic"},
        tuple(f"display_{w}x{h}_html" for w, h in sizes),
    )


def display_tag() -> FormatSpec:
    return FormatSpec(
        "display_tag",
        {
            "width": 300,
            "height": 250,
            "supported_tag_types": ["iframe", "javascript"],
            "ssl_required": True,
            "composition_model": "deterministic",
        },
        ("display_js",),
    )


def vast(max_seconds: int) -> FormatSpec:
    return FormatSpec(
        "video_vast",
        {
            "orientation": "horizontal",
            "aspect_ratio": "16:9",
            "vast_version": "4.2",
            "duration_ms_range": [6000, max_seconds * 1000],
            "linear_required": True,
            "ssl_required": True,
            "composition_model": "deterministic",
        },
        ("video_vast_30s",) if max_seconds >= 30 else ("video_vast",),
    )


def audio(seconds: int) -> FormatSpec:
    return FormatSpec(
        "audio_hosted",
        {"duration_ms_exact": seconds * 1000, "audio_codecs": ["mp3", "aac"], "composition_model": "deterministic"},
        (f"audio_standard_{seconds}s",),
    )


@dataclass(frozen=True)
class CatalogProduct:
    """A product as the seller knows it: what it serves on the wire plus how it delivers.

    ``fill_rate`` is the share of a non-guaranteed plan the auction actually wins; ``ctr``, ``viewability`` and
    ``completion_rate`` turn spend into clicks, viewable impressions and completed views;
    ``flat_impressions`` is what a flat-rate booking delivers over its whole flight.
    """

    product_id: str
    name: str
    description: str
    publisher_domain: str
    channels: tuple[str, ...]
    delivery_type: str  # guaranteed | non_guaranteed
    formats: tuple[FormatSpec, ...]
    pricing: tuple[PricingSpec, ...]
    tags: tuple[str, ...]
    fill_rate: Decimal = Decimal(1)
    ctr: Decimal = Decimal("0.001")
    viewability: Decimal = Decimal("0.7")
    completion_rate: Decimal = Decimal("0.75")
    flat_impressions: int = 0

    def option(self, option_id: str) -> PricingSpec | None:
        return next((p for p in self.pricing if p.option_id == option_id), None)

    @property
    def format_kinds(self) -> frozenset[str]:
        return frozenset(f.kind for f in self.formats)

    @property
    def smallest_budget(self) -> Decimal:
        """The least a package can spend here: a flat rate's price, else a minimum spend, else nothing."""
        floors = [p.fixed if p.model == "flat_rate" and p.fixed is not None else p.min_spend for p in self.pricing]
        known = [f for f in floors if f is not None]
        return min(known) if len(known) == len(floors) else Decimal(0)

    def keywords(self) -> frozenset[str]:
        text = " ".join((self.name, self.description, *self.tags, *self.channels, *self.format_kinds))
        return frozenset(_words(text))

    def wire(self) -> Product:
        """The product as a validated library model (a malformed seed fails at start-up, not on the wire)."""
        return Product.model_validate(
            {
                "product_id": self.product_id,
                "name": self.name,
                "description": self.description,
                "publisher_properties": [{"publisher_domain": self.publisher_domain, "selection_type": "all"}],
                "channels": list(self.channels),
                "delivery_type": self.delivery_type,
                "pricing_options": [p.wire() for p in self.pricing],
                "reporting_capabilities": _REPORTING,
                "format_options": [f.wire() for f in self.formats],
            }
        )

    def offer(self) -> dict[str, Any]:
        """The product as AdCP 3.2's ``list_products`` publishes it: the canonical offer shape (validated)."""
        wire = self.wire().model_dump(mode="json", exclude_none=True)
        offer = {key: value for key, value in wire.items() if key in CanonicalProduct.model_fields}
        offer["pricing_options"] = [p.wire() for p in self.pricing]
        return CanonicalProduct.model_validate(offer).model_dump(mode="json", exclude_none=True)


def _words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if len(w) > 2]


@dataclass(frozen=True)
class Catalog:
    name: str
    seller_name: str
    products: tuple[CatalogProduct, ...]

    def product(self, product_id: str) -> CatalogProduct | None:
        return next((p for p in self.products if p.product_id == product_id), None)

    @property
    def publisher_domains(self) -> list[str]:
        return sorted({p.publisher_domain for p in self.products})

    @property
    def pricing_models(self) -> list[str]:
        return sorted({o.model for p in self.products for o in p.pricing})

    @property
    def channels(self) -> list[str]:
        return sorted({c for p in self.products for c in p.channels})

    @property
    def v1_format_ids(self) -> frozenset[str]:
        return frozenset(i for p in self.products for f in p.formats for i in f.v1_ids)


_NEWS = "sandbox-news.example"
_VIDEO = "sandbox-video.example"
_AUDIO = "sandbox-audio.example"
_STREAM = "sandbox-stream.example"

_DEFAULT = (
    CatalogProduct(
        product_id="news-homepage-display",
        name="News Homepage Display",
        description="Above-the-fold display on the Sandbox News homepage, guaranteed impressions.",
        publisher_domain=_NEWS,
        channels=("display",),
        delivery_type="guaranteed",
        formats=(image((300, 250), (728, 90), (970, 250)), html5((300, 250), (728, 90))),
        pricing=(PricingSpec("cpm-fixed", "cpm", fixed=Decimal("18.00")),),
        tags=("news", "homepage", "premium", "desktop"),
        ctr=Decimal("0.0015"),
    ),
    CatalogProduct(
        product_id="news-run-of-site",
        name="News Run-of-Site Display",
        description="Display across every Sandbox News section, bought in the auction above a floor.",
        publisher_domain=_NEWS,
        channels=("display",),
        delivery_type="non_guaranteed",
        formats=(image((300, 250), (320, 50), (728, 90)), display_tag()),
        pricing=(PricingSpec("cpm-auction", "cpm", floor=Decimal("2.50")),),
        tags=("news", "reach", "mobile", "desktop"),
        fill_rate=Decimal("0.9"),
    ),
    CatalogProduct(
        product_id="news-viewable-display",
        name="News Viewable Display",
        description="Display charged only for viewable impressions (MRC 50 %/1 s), fixed or in the auction.",
        publisher_domain=_NEWS,
        channels=("display",),
        delivery_type="non_guaranteed",
        formats=(html5((300, 250), (300, 600)),),
        pricing=(
            PricingSpec("vcpm-fixed", "vcpm", fixed=Decimal("9.00")),
            PricingSpec("vcpm-auction", "vcpm", floor=Decimal("6.00")),
        ),
        tags=("news", "viewability", "brand", "safety"),
        fill_rate=Decimal("0.85"),
        viewability=Decimal("0.72"),
    ),
    CatalogProduct(
        product_id="video-preroll",
        name="Online Video Pre-roll",
        description="Skippable pre-roll on Sandbox Video, charged per completed view.",
        publisher_domain=_VIDEO,
        channels=("olv",),
        delivery_type="non_guaranteed",
        formats=(vast(30),),
        pricing=(
            PricingSpec("cpcv-fixed", "cpcv", fixed=Decimal("0.04")),
            PricingSpec("cpm-auction", "cpm", floor=Decimal("12.00")),
        ),
        tags=("video", "preroll", "instream", "sports", "entertainment"),
        fill_rate=Decimal("0.8"),
        completion_rate=Decimal("0.7"),
    ),
    CatalogProduct(
        product_id="ctv-premium-streaming",
        name="CTV Premium Streaming",
        description="Guaranteed 15-30 s spots in premium connected-TV streaming, non-skippable.",
        publisher_domain=_STREAM,
        channels=("ctv",),
        delivery_type="guaranteed",
        formats=(vast(30),),
        pricing=(PricingSpec("cpm-fixed", "cpm", fixed=Decimal("35.00"), min_spend=Decimal("5000")),),
        tags=("ctv", "tv", "streaming", "premium", "video", "household"),
        ctr=Decimal(0),
        completion_rate=Decimal("0.96"),
    ),
    CatalogProduct(
        product_id="news-homepage-takeover",
        name="News Homepage Takeover (24 h)",
        description="Every homepage ad slot for one day, for a flat fee.",
        publisher_domain=_NEWS,
        channels=("display",),
        delivery_type="guaranteed",
        formats=(image((970, 250), (300, 600)),),
        pricing=(PricingSpec("flat-rate", "flat_rate", fixed=Decimal("12000.00")),),
        tags=("news", "homepage", "takeover", "sponsorship", "launch"),
        flat_impressions=1_200_000,
    ),
    CatalogProduct(
        product_id="audio-streaming",
        name="Streaming Audio",
        description="Audio spots between tracks on Sandbox Audio, bought in the auction.",
        publisher_domain=_AUDIO,
        channels=("streaming_audio",),
        delivery_type="non_guaranteed",
        formats=(audio(30),),
        pricing=(PricingSpec("cpm-auction", "cpm", floor=Decimal("8.00")),),
        tags=("audio", "music", "streaming", "commute"),
        fill_rate=Decimal("0.9"),
        ctr=Decimal(0),
        completion_rate=Decimal("0.92"),
    ),
)

_PREMIUM_VIDEO = (
    CatalogProduct(
        product_id="ctv-live-sports",
        name="CTV Live Sports",
        description="Guaranteed spots in live sports streams on connected TVs.",
        publisher_domain=_STREAM,
        channels=("ctv",),
        delivery_type="guaranteed",
        formats=(vast(30),),
        pricing=(PricingSpec("cpm-fixed", "cpm", fixed=Decimal("45.00"), min_spend=Decimal("10000")),),
        tags=("ctv", "sports", "live", "tv", "premium"),
        ctr=Decimal(0),
        completion_rate=Decimal("0.97"),
    ),
    CatalogProduct(
        product_id="ctv-entertainment",
        name="CTV Entertainment",
        description="Connected-TV entertainment inventory in the auction above a floor.",
        publisher_domain=_STREAM,
        channels=("ctv",),
        delivery_type="non_guaranteed",
        formats=(vast(30),),
        pricing=(PricingSpec("cpm-auction", "cpm", floor=Decimal("22.00")),),
        tags=("ctv", "entertainment", "drama", "tv"),
        fill_rate=Decimal("0.75"),
        ctr=Decimal(0),
        completion_rate=Decimal("0.95"),
    ),
    CatalogProduct(
        product_id="olv-preroll-completed",
        name="Online Video Pre-roll (completed views)",
        description="Pre-roll charged per completed view, fixed price or auction above a floor.",
        publisher_domain=_VIDEO,
        channels=("olv",),
        delivery_type="non_guaranteed",
        formats=(vast(15), vast(30)),
        pricing=(
            PricingSpec("cpcv-fixed", "cpcv", fixed=Decimal("0.06")),
            PricingSpec("cpcv-auction", "cpcv", floor=Decimal("0.03")),
        ),
        tags=("video", "preroll", "completion"),
        fill_rate=Decimal("0.8"),
        completion_rate=Decimal("0.72"),
    ),
    CatalogProduct(
        product_id="olv-outstream-viewable",
        name="Outstream Video (viewable CPM)",
        description="In-article outstream video charged per thousand viewable impressions.",
        publisher_domain=_VIDEO,
        channels=("olv",),
        delivery_type="non_guaranteed",
        formats=(vast(30),),
        pricing=(PricingSpec("vcpm-fixed", "vcpm", fixed=Decimal("14.00")),),
        tags=("video", "outstream", "viewability"),
        fill_rate=Decimal("0.9"),
        viewability=Decimal("0.65"),
    ),
    CatalogProduct(
        product_id="streaming-series-sponsorship",
        name="Streaming Series Sponsorship",
        description="Sponsorship of a streaming series for its season: every break, for a flat fee.",
        publisher_domain=_STREAM,
        channels=("ctv", "olv"),
        delivery_type="guaranteed",
        formats=(vast(30),),
        pricing=(PricingSpec("flat-rate", "flat_rate", fixed=Decimal("50000.00")),),
        tags=("sponsorship", "series", "ctv", "exclusive"),
        ctr=Decimal(0),
        flat_impressions=2_500_000,
    ),
)

_SEEDS: Mapping[str, tuple[CatalogProduct, ...]] = {"default": _DEFAULT, "premium-video": _PREMIUM_VIDEO}


def build_catalog(name: str = "default") -> Catalog:
    """The named catalog. Raises ``ValueError`` for an unknown name."""
    if name not in _SEEDS:
        raise ValueError(f"unknown catalog {name!r}; choose one of {', '.join(CATALOG_NAMES)}")
    catalog = Catalog(name=name, seller_name=SELLER_NAMES[name], products=_SEEDS[name])
    for product in catalog.products:
        product.wire()  # every seeded product must be a valid AdCP product
    return catalog


__all__ = ["CATALOG_NAMES", "CURRENCY", "Catalog", "CatalogProduct", "FormatSpec", "PricingSpec", "build_catalog"]
