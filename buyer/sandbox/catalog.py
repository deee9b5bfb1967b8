"""The sandbox seller's seeded catalogs.

Three named catalogs exist (``default``, ``premium-video``, ``performance``) so that tests running several
sandbox sellers side by side see different inventory and prices. Everything here is deterministic: product
and package ids are derived from a hash of the seller id and the item name, so the same seller id always
serves the same ids, and two sellers with different ids never share one.

Prices are ``Decimal`` dollars (CPM). They only become floats where the reference seller's wire format
uses floats (``ext.floor_cpm``, the legacy ``/pricing`` preview), and integer micros everywhere else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from buyer.sandbox.pricing import legacy_float, money, round_cents

CATALOG_NAMES: tuple[str, ...] = ("default", "premium-video", "performance")

#: The seller id each catalog answers with unless ``seller_id`` is given.
DEFAULT_SELLER_IDS: Mapping[str, str] = {
    "default": "sandbox-seller-default",
    "premium-video": "sandbox-seller-premium-video",
    "performance": "sandbox-seller-performance",
}

#: Human-readable seller names, used in the agent card.
SELLER_NAMES: Mapping[str, str] = {
    "default": "Sandbox Seller (mixed inventory)",
    "premium-video": "Sandbox Seller (premium video)",
    "performance": "Sandbox Seller (performance)",
}

# OpenRTB ad formats and AdCOM device types per inventory type, as the reference seller's media kit
# classifies them (linear TV and DOOH are not in its table; they get TV and out-of-home devices).
_PACKAGE_AD_FORMATS: Mapping[str, tuple[str, ...]] = {
    "display": ("banner",),
    "video": ("video",),
    "ctv": ("video",),
    "mobile_app": ("banner", "video"),
    "native": ("native",),
    "linear_tv": ("video",),
    "dooh": ("banner", "video"),
}
_PACKAGE_DEVICE_TYPES: Mapping[str, tuple[int, ...]] = {
    "display": (2, 4, 5),
    "video": (2, 4, 5),
    "ctv": (3, 7),
    "mobile_app": (4, 5),
    "native": (2, 4, 5),
    "linear_tv": (3, 7),
    "dooh": (6,),
}
_PACKAGE_LABELS: Mapping[str, str] = {
    "display": "Display Reach",
    "video": "Online Video",
    "ctv": "Connected TV",
    "mobile_app": "Mobile App",
    "native": "Native Content",
    "linear_tv": "Linear TV",
    "dooh": "Digital Out-of-Home",
}


def stable_id(prefix: str, seller_id: str, name: str) -> str:
    """``prefix-`` plus 8 hex digits of sha256(seller id + name), e.g. ``prod-91ddc363``."""
    digest = hashlib.sha256(f"{seller_id}:{name}".encode()).hexdigest()
    return f"{prefix}-{digest[:8]}"


@dataclass(frozen=True)
class Publisher:
    """One publisher (``seller_organization_id``) whose inventory this seller represents."""

    org_id: str
    name: str
    domain: str
    iab_categories: tuple[str, ...]


@dataclass(frozen=True)
class ProductSpec:
    """Seed data for one product, before the seller id turns it into a :class:`CatalogProduct`."""

    publisher: str  # Publisher.org_id
    name: str
    description: str
    inventory_type: str
    base: str | None  # dollars CPM as text (exact); None = price on request
    floor: str | None
    deal_types: tuple[str, ...]
    available: int | None
    minimum: int = 10_000
    delivery: str = "Guaranteed"
    content_targeting: Mapping[str, tuple[str, ...]] | None = None
    audience_targeting: Mapping[str, tuple[str, ...]] | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogProduct:
    """A product as the sandbox prices it. Money is Decimal dollars; ``to_wire`` renders the seller shape."""

    product_id: str
    publisher: Publisher
    name: str
    description: str
    inventory_type: str
    base_cpm: Decimal | None
    floor_cpm: Decimal | None
    deal_types: tuple[str, ...]
    available_impressions: int | None
    minimum_impressions: int
    delivery_type: str
    content_targeting: Mapping[str, tuple[str, ...]] | None
    audience_targeting: Mapping[str, tuple[str, ...]] | None
    tags: tuple[str, ...]

    @property
    def priced(self) -> bool:
        """False for "price on request" products: the seller never quotes them."""
        return self.base_cpm is not None

    def to_wire(self) -> dict[str, Any]:
        """The shared Product shape (products.json), field for field and in the same order."""
        return {
            "product_id": self.product_id,
            "seller_organization_id": self.publisher.org_id,
            "name": self.name,
            "description": self.description,
            "base_price": money(self.base_cpm) if self.base_cpm is not None else None,
            "pricing_type": "fixed",
            "pricing_model": "cpm",
            "delivery_type": self.delivery_type,
            "domain": self.publisher.domain,
            "ad_formats": [self.inventory_type],
            "audience_targeting": _listify(self.audience_targeting),
            "ad_product_targeting": None,
            "content_targeting": _listify(self.content_targeting),
            "available_impressions": self.available_impressions,
            "commercial_terms": None,
            "ext": {
                "inventory_type": self.inventory_type,
                # The reference seller serves the floor as a float here (legacy field); so do we.
                "floor_cpm": legacy_float(self.floor_cpm),
                "minimum_impressions": self.minimum_impressions,
                "deal_types": list(self.deal_types),
                "audience_capabilities": [],
            },
        }


@dataclass(frozen=True)
class Package:
    """A media-kit package: the catalog's priced products of one inventory type, bundled."""

    package_id: str
    name: str
    description: str
    inventory_type: str
    products: tuple[CatalogProduct, ...]
    cat: tuple[str, ...]
    tags: tuple[str, ...]
    base_price: Decimal
    floor_price: Decimal
    is_featured: bool

    @property
    def ad_formats(self) -> list[str]:
        return list(_PACKAGE_AD_FORMATS.get(self.inventory_type, ("banner",)))

    @property
    def device_types(self) -> list[int]:
        return list(_PACKAGE_DEVICE_TYPES.get(self.inventory_type, (2,)))


@dataclass(frozen=True)
class Catalog:
    """One seller's whole offer: its products (in listing order) and media-kit packages."""

    name: str
    seller_id: str
    seller_name: str
    products: tuple[CatalogProduct, ...]
    packages: tuple[Package, ...] = field(default=())

    def product(self, product_id: str) -> CatalogProduct | None:
        for product in self.products:
            if product.product_id == product_id:
                return product
        return None

    def package(self, package_id: str) -> Package | None:
        for package in self.packages:
            if package.package_id == package_id:
                return package
        return None

    @property
    def inventory_types(self) -> list[str]:
        return sorted({p.inventory_type for p in self.products})

    @property
    def deal_types(self) -> list[str]:
        return sorted({d for p in self.products for d in p.deal_types})


def _listify(value: Mapping[str, tuple[str, ...]] | None) -> dict[str, list[str]] | None:
    return None if value is None else {k: list(v) for k, v in value.items()}


# --------------------------------------------------------------------------------------------------
# Seed data. Names and descriptions are plain data; publishers are fictional.
# --------------------------------------------------------------------------------------------------

_DEFAULT_PUBLISHERS = (
    Publisher("pub-meridian-news", "Meridian News Network", "meridiannews.example", ("IAB12", "IAB3")),
    Publisher("pub-northstar-sports", "Northstar Sports", "northstarsports.example", ("IAB17",)),
    Publisher("pub-brightline-streaming", "Brightline Streaming", "brightline.example", ("IAB1", "IAB1-5")),
    Publisher("pub-pocketplay-games", "PocketPlay Games", "pocketplay.example", ("IAB9", "IAB9-30")),
    Publisher("pub-crestview-broadcast", "Crestview Broadcast Group", "crestviewtv.example", ("IAB1", "IAB12")),
    Publisher("pub-metro-screens", "Metro Screens Outdoor", "metroscreens.example", ("IAB20",)),
)

_DEFAULT_PRODUCTS = (
    ProductSpec(
        "pub-meridian-news",
        "Meridian News - Homepage Takeover",
        "Full homepage takeover: billboard, half-page and sticky units on the news front page",
        "display",
        "18.00",
        "12.00",
        ("PG", "PD"),
        4_000_000,
        minimum=100_000,
        delivery="Exclusive",
        content_targeting={"section": ("homepage",)},
        tags=("premium", "news", "high impact"),
    ),
    ProductSpec(
        "pub-meridian-news",
        "Meridian News - Run of Site Display",
        "Standard IAB display units across all news, business and politics sections",
        "display",
        "6.50",
        "4.00",
        ("PD", "PA"),
        60_000_000,
        minimum=50_000,
        delivery="PMP",
        content_targeting={"section": ("news", "business", "politics")},
        tags=("news", "reach"),
    ),
    ProductSpec(
        "pub-meridian-news",
        "Meridian News - Native In-Article",
        "Sponsored content cards inside article bodies",
        "native",
        "9.00",
        "6.00",
        ("PD", "PA"),
        25_000_000,
        minimum=50_000,
        delivery="PMP",
        content_targeting={"section": ("news", "lifestyle")},
        tags=("news", "native", "content"),
    ),
    ProductSpec(
        "pub-meridian-news",
        "Meridian News - Pre-Roll Video",
        "In-stream pre-roll before news clips, 15s and 30s, completion-optimised player",
        "video",
        "22.00",
        "15.00",
        ("PG", "PD"),
        12_000_000,
        minimum=100_000,
        content_targeting={"section": ("news", "business")},
        tags=("news", "video", "pre-roll"),
    ),
    ProductSpec(
        "pub-northstar-sports",
        "Northstar Sports - Live Scores Display",
        "Display units on live scores, brackets and box scores pages",
        "display",
        "11.00",
        "7.50",
        ("PG", "PD", "PA"),
        30_000_000,
        minimum=100_000,
        content_targeting={"genre": ("sports",), "section": ("scores", "live")},
        audience_targeting={"demo": ("A18-34", "A25-54"), "geo": ("US",)},
        tags=("sports", "live"),
    ),
    ProductSpec(
        "pub-northstar-sports",
        "Northstar Sports - Highlights Pre-Roll",
        "Pre-roll before game highlights and post-game analysis clips",
        "video",
        "26.00",
        "18.00",
        ("PG", "PD"),
        9_000_000,
        minimum=200_000,
        content_targeting={"genre": ("sports",)},
        audience_targeting={"demo": ("A18-49",), "geo": ("US",)},
        tags=("sports", "video", "highlights"),
    ),
    ProductSpec(
        "pub-northstar-sports",
        "Northstar Sports - In-Feed Native",
        "Native units in the team news feed",
        "native",
        "8.00",
        "5.00",
        ("PD",),
        15_000_000,
        minimum=50_000,
        delivery="PMP",
        content_targeting={"genre": ("sports",)},
        tags=("sports", "native"),
    ),
    ProductSpec(
        "pub-brightline-streaming",
        "Brightline CTV - Premium Drama",
        "Connected TV ad breaks in premium scripted drama series, full-episode player",
        "ctv",
        "38.00",
        "30.00",
        ("PG",),
        20_000_000,
        minimum=250_000,
        content_targeting={"genre": ("drama",), "content_rating": ("TV-PG", "TV-14")},
        audience_targeting={"demo": ("A25-54",), "geo": ("US",)},
        tags=("premium", "ctv", "drama", "streaming"),
    ),
    ProductSpec(
        "pub-brightline-streaming",
        "Brightline CTV - Live Sports",
        "Live sports ad pods on connected TV, national feed",
        "ctv",
        "45.00",
        "36.00",
        ("PG", "PD"),
        8_000_000,
        minimum=500_000,
        content_targeting={"genre": ("sports",), "content_rating": ("TV-PG",)},
        audience_targeting={"demo": ("A18-49",), "geo": ("US",)},
        tags=("premium", "ctv", "sports", "live"),
    ),
    ProductSpec(
        "pub-brightline-streaming",
        "Brightline CTV - FAST Channels",
        "Free ad-supported streaming TV channels, run of network",
        "ctv",
        "24.00",
        "17.00",
        ("PD", "PA"),
        40_000_000,
        minimum=100_000,
        delivery="PMP",
        content_targeting={"genre": ("comedy", "reality", "classic_tv")},
        tags=("ctv", "fast", "reach"),
    ),
    ProductSpec(
        "pub-pocketplay-games",
        "PocketPlay - Rewarded Video",
        "User-initiated rewarded video in casual mobile games",
        "mobile_app",
        "19.00",
        "13.00",
        ("PD", "PA"),
        30_000_000,
        minimum=100_000,
        delivery="PMP",
        content_targeting={"app_category": ("games", "puzzle", "casual")},
        tags=("mobile", "gaming", "rewarded"),
    ),
    ProductSpec(
        "pub-pocketplay-games",
        "PocketPlay - Interstitial",
        "Full-screen interstitials at natural level breaks",
        "mobile_app",
        "10.00",
        "6.50",
        ("PG", "PD", "PA"),
        50_000_000,
        minimum=100_000,
        content_targeting={"app_category": ("games",)},
        tags=("mobile", "gaming", "interstitial"),
    ),
    ProductSpec(
        "pub-pocketplay-games",
        "PocketPlay - Native Store Feed",
        "Native sponsored tiles in the in-app game store",
        "native",
        "7.00",
        "4.50",
        ("PD", "PA"),
        20_000_000,
        minimum=50_000,
        delivery="PMP",
        tags=("mobile", "gaming", "native"),
    ),
    ProductSpec(
        "pub-crestview-broadcast",
        "Crestview Primetime :30 National",
        "Broadcast primetime 30-second national spot",
        "linear_tv",
        "52.00",
        "40.00",
        ("PG",),
        15_000_000,
        minimum=1_000_000,
        audience_targeting={"demo": ("A25-54",), "daypart": ("primetime",)},
        tags=("tv", "broadcast", "primetime", "national"),
    ),
    ProductSpec(
        "pub-crestview-broadcast",
        "Crestview Local News :30 - Top 20 DMAs",
        "Local news 30-second spots across the top 20 markets",
        "linear_tv",
        "16.00",
        "10.00",
        ("PG", "PD"),
        10_000_000,
        minimum=250_000,
        content_targeting={"genre": ("news",)},
        tags=("tv", "local", "news"),
    ),
    ProductSpec(
        "pub-metro-screens",
        "Metro Screens - Transit Hub Spectacular",
        "Station-dominating digital screens in central transit hubs; pricing on request only",
        "dooh",
        None,
        None,
        ("PD",),
        None,
        content_targeting={"venue": ("transit_hub",), "format": ("spectacular",)},
        tags=("dooh", "outdoor", "high impact"),
    ),
)

_PREMIUM_VIDEO_PUBLISHERS = (
    Publisher("pub-aurora-streaming", "Aurora Streaming", "aurorastream.example", ("IAB1", "IAB1-5")),
    Publisher("pub-summit-sports-network", "Summit Sports Network", "summitsports.example", ("IAB17",)),
    Publisher("pub-lumen-video", "Lumen Video Studios", "lumenvideo.example", ("IAB1", "IAB1-6")),
)

_PREMIUM_VIDEO_PRODUCTS = (
    ProductSpec(
        "pub-aurora-streaming",
        "Aurora CTV - Prestige Originals",
        "Ad breaks in award-winning original series on connected TV",
        "ctv",
        "62.00",
        "50.00",
        ("PG",),
        6_000_000,
        minimum=500_000,
        content_targeting={"genre": ("drama", "thriller"), "content_rating": ("TV-14", "TV-MA")},
        audience_targeting={"demo": ("A25-54",), "geo": ("US",)},
        tags=("premium", "ctv", "originals"),
    ),
    ProductSpec(
        "pub-aurora-streaming",
        "Aurora CTV - Movie Night",
        "Feature-film ad pods on connected TV, evenings and weekends",
        "ctv",
        "48.00",
        "38.00",
        ("PG", "PD"),
        12_000_000,
        minimum=250_000,
        content_targeting={"genre": ("movies",)},
        tags=("premium", "ctv", "movies"),
    ),
    ProductSpec(
        "pub-aurora-streaming",
        "Aurora Kids-Safe Family CTV",
        "Family co-viewing content, brand-safe, COPPA compliant",
        "ctv",
        "34.00",
        "26.00",
        ("PG", "PD"),
        9_000_000,
        minimum=250_000,
        content_targeting={"genre": ("family", "animation"), "content_rating": ("TV-G", "TV-PG")},
        tags=("ctv", "family"),
    ),
    ProductSpec(
        "pub-summit-sports-network",
        "Summit Live Playoffs CTV",
        "Live playoff broadcasts on connected TV, national pods",
        "ctv",
        "65.00",
        "55.00",
        ("PG",),
        4_000_000,
        minimum=500_000,
        delivery="Exclusive",
        content_targeting={"genre": ("sports",), "event": ("playoffs",)},
        audience_targeting={"demo": ("A18-49",), "geo": ("US",)},
        tags=("premium", "ctv", "sports", "live"),
    ),
    ProductSpec(
        "pub-summit-sports-network",
        "Summit Sports - Highlights Pre-Roll",
        "Pre-roll on sports highlights across web and app players",
        "video",
        "30.00",
        "22.00",
        ("PG", "PD"),
        15_000_000,
        minimum=200_000,
        content_targeting={"genre": ("sports",)},
        tags=("video", "sports", "pre-roll"),
    ),
    ProductSpec(
        "pub-summit-sports-network",
        "Summit Sports - Mobile Vertical Video",
        "Vertical full-screen video between highlight clips in the mobile app",
        "mobile_app",
        "28.00",
        "20.00",
        ("PD", "PA"),
        10_000_000,
        minimum=200_000,
        delivery="PMP",
        tags=("mobile", "video", "sports"),
    ),
    ProductSpec(
        "pub-lumen-video",
        "Lumen Video - Outstream Premium",
        "Outstream video in editorial articles, viewable-only",
        "video",
        "24.00",
        "17.00",
        ("PD", "PA"),
        25_000_000,
        minimum=100_000,
        delivery="PMP",
        tags=("video", "outstream"),
    ),
    ProductSpec(
        "pub-lumen-video",
        "Lumen Video - Trailer Pre-Roll",
        "Pre-roll before film trailers and entertainment news clips",
        "video",
        "36.00",
        "27.00",
        ("PG", "PD"),
        8_000_000,
        minimum=200_000,
        content_targeting={"genre": ("entertainment", "movies")},
        tags=("premium", "video", "entertainment"),
    ),
    ProductSpec(
        "pub-lumen-video",
        "Lumen Video - Homepage Video Billboard",
        "Autoplay-muted video billboard on the entertainment homepage",
        "display",
        "32.00",
        "24.00",
        ("PG",),
        3_000_000,
        minimum=100_000,
        delivery="Exclusive",
        content_targeting={"section": ("homepage",)},
        tags=("premium", "high impact", "entertainment"),
    ),
)

_PERFORMANCE_PUBLISHERS = (
    Publisher("pub-dailydeals-network", "DailyDeals Network", "dailydeals.example", ("IAB22",)),
    Publisher("pub-snapgames-studio", "SnapGames Studio", "snapgames.example", ("IAB9", "IAB9-30")),
    Publisher("pub-recipebox-media", "RecipeBox Media", "recipebox.example", ("IAB8",)),
)

_PERFORMANCE_PRODUCTS = (
    ProductSpec(
        "pub-dailydeals-network",
        "DailyDeals - Run of Network Banners",
        "High-volume standard banners across coupon and deal pages",
        "display",
        "2.50",
        "1.50",
        ("PD", "PA"),
        200_000_000,
        minimum=500_000,
        delivery="PMP",
        content_targeting={"section": ("deals", "coupons")},
        tags=("performance", "reach", "shopping"),
    ),
    ProductSpec(
        "pub-dailydeals-network",
        "DailyDeals - Checkout Native",
        "Native product cards on checkout confirmation pages",
        "native",
        "4.00",
        "2.50",
        ("PD", "PA"),
        60_000_000,
        minimum=250_000,
        delivery="PMP",
        tags=("performance", "native", "shopping"),
    ),
    ProductSpec(
        "pub-dailydeals-network",
        "DailyDeals - Guaranteed Sidebar",
        "Guaranteed right-rail display on deal category pages",
        "display",
        "3.80",
        "2.60",
        ("PG", "PD"),
        80_000_000,
        minimum=500_000,
        tags=("performance", "display"),
    ),
    ProductSpec(
        "pub-snapgames-studio",
        "SnapGames - Banner 320x50",
        "Sticky in-game mobile banners",
        "mobile_app",
        "1.80",
        "1.00",
        ("PD", "PA"),
        300_000_000,
        minimum=1_000_000,
        delivery="PMP",
        content_targeting={"app_category": ("games",)},
        tags=("performance", "mobile", "gaming"),
    ),
    ProductSpec(
        "pub-snapgames-studio",
        "SnapGames - Playable Interstitial",
        "Playable interstitials between levels, install-optimised",
        "mobile_app",
        "5.50",
        "3.50",
        ("PG", "PD", "PA"),
        90_000_000,
        minimum=500_000,
        content_targeting={"app_category": ("games",)},
        tags=("performance", "mobile", "playable"),
    ),
    ProductSpec(
        "pub-snapgames-studio",
        "SnapGames - Rewarded Video Lite",
        "Short rewarded video for in-game currency",
        "mobile_app",
        "6.00",
        "4.00",
        ("PD", "PA"),
        70_000_000,
        minimum=500_000,
        delivery="PMP",
        tags=("performance", "mobile", "rewarded"),
    ),
    ProductSpec(
        "pub-recipebox-media",
        "RecipeBox - Recipe Page Native",
        "Native units inside recipe steps",
        "native",
        "3.20",
        "2.00",
        ("PD", "PA"),
        80_000_000,
        minimum=250_000,
        delivery="PMP",
        content_targeting={"section": ("recipes",)},
        tags=("performance", "native", "food"),
    ),
    ProductSpec(
        "pub-recipebox-media",
        "RecipeBox - Shoppable Display",
        "Display units with add-to-cart for recipe ingredients",
        "display",
        "4.50",
        "3.00",
        ("PG", "PD"),
        40_000_000,
        minimum=250_000,
        content_targeting={"section": ("recipes", "grocery")},
        tags=("performance", "shopping", "food"),
    ),
)

_SEEDS: Mapping[str, tuple[tuple[Publisher, ...], tuple[ProductSpec, ...], frozenset[str]]] = {
    # name -> (publishers, products, featured package inventory types)
    "default": (_DEFAULT_PUBLISHERS, _DEFAULT_PRODUCTS, frozenset({"ctv", "video"})),
    "premium-video": (_PREMIUM_VIDEO_PUBLISHERS, _PREMIUM_VIDEO_PRODUCTS, frozenset({"ctv"})),
    "performance": (_PERFORMANCE_PUBLISHERS, _PERFORMANCE_PRODUCTS, frozenset({"mobile_app"})),
}


def build_catalog(name: str = "default", seller_id: str | None = None) -> Catalog:
    """Build the named catalog for ``seller_id`` (the catalog's default seller id when None).

    Raises ``ValueError`` for an unknown catalog name.
    """
    if name not in _SEEDS:
        raise ValueError(f"unknown catalog {name!r}; choose one of {', '.join(CATALOG_NAMES)}")
    sid = seller_id or DEFAULT_SELLER_IDS[name]
    publishers, specs, featured = _SEEDS[name]
    by_org = {p.org_id: p for p in publishers}
    products = tuple(
        CatalogProduct(
            product_id=stable_id("prod", sid, spec.name),
            publisher=by_org[spec.publisher],
            name=spec.name,
            description=spec.description,
            inventory_type=spec.inventory_type,
            base_cpm=Decimal(spec.base) if spec.base is not None else None,
            floor_cpm=Decimal(spec.floor) if spec.floor is not None else None,
            deal_types=spec.deal_types,
            available_impressions=spec.available,
            minimum_impressions=spec.minimum,
            delivery_type=spec.delivery,
            content_targeting=spec.content_targeting,
            audience_targeting=spec.audience_targeting,
            tags=spec.tags,
        )
        for spec in specs
    )
    return Catalog(
        name=name,
        seller_id=sid,
        seller_name=SELLER_NAMES[name],
        products=products,
        packages=_build_packages(sid, products, featured),
    )


def _build_packages(
    seller_id: str, products: tuple[CatalogProduct, ...], featured: frozenset[str]
) -> tuple[Package, ...]:
    """One package per inventory type, over priced products only (an unpriced product has no CPM to blend)."""
    by_type: dict[str, list[CatalogProduct]] = {}
    for product in products:
        if product.priced:
            by_type.setdefault(product.inventory_type, []).append(product)
    packages = []
    for inventory_type in sorted(by_type):
        members = tuple(by_type[inventory_type])
        label = _PACKAGE_LABELS.get(inventory_type, inventory_type)
        bases = [p.base_cpm for p in members if p.base_cpm is not None]
        floors = [p.floor_cpm for p in members if p.floor_cpm is not None]
        publishers = sorted({p.publisher.name for p in members})
        packages.append(
            Package(
                package_id=stable_id("pkg", seller_id, f"package:{inventory_type}"),
                name=f"{label} Package",
                description=f"{len(members)} {label.lower()} placements from {', '.join(publishers)}",
                inventory_type=inventory_type,
                products=members,
                cat=tuple(sorted({c for p in members for c in p.publisher.iab_categories})),
                tags=tuple(sorted({t for p in members for t in p.tags} | {inventory_type})),
                base_price=round_cents(sum(bases, Decimal(0)) / len(bases)),
                floor_price=min(floors) if floors else round_cents(min(bases)),
                is_featured=inventory_type in featured,
            )
        )
    return tuple(packages)


__all__ = [
    "CATALOG_NAMES",
    "Catalog",
    "CatalogProduct",
    "Package",
    "Publisher",
    "build_catalog",
    "stable_id",
]
