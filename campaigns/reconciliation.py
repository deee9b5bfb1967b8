"""Price reconciliation of a booked deal: the CPM quoted, negotiated, booked and delivered, and where they part.

Sellers are known to book or bill at other prices than the ones agreed (a negotiated price dropped at
booking, a bill above the quote), so each deal's prices are compared after booking and again as delivery
is read. Divergences beyond ``BOOKING_TOLERANCE_PCT`` are flagged, in words a media buyer can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from buyer.sellers.money import micros_to_decimal
from campaigns.models import BookedDeal, NegotiationStatus

CENT = Decimal("0.01")
# Delivery below this many impressions says too little about its CPM to flag it.
MIN_IMPRESSIONS_TO_JUDGE = 1000


@dataclass(frozen=True)
class PriceReconciliation:
    quoted_cpm: Decimal
    negotiated_cpm: Decimal | None
    booked_cpm: Decimal
    delivered_cpm: Decimal | None  # spend per thousand impressions delivered, once delivery is read
    flags: list[str] = field(default_factory=list)

    @property
    def agreed_cpm(self) -> Decimal:
        """What the buyer agreed to pay: the negotiated price, else the quote."""
        return self.negotiated_cpm if self.negotiated_cpm is not None else self.quoted_cpm


def reconcile(deal: BookedDeal) -> PriceReconciliation:
    """The deal's four prices and its flags. Load the deal with its recommendation and delivery."""
    line = deal.recommendation
    quoted = micros_to_decimal(line.quoted_cpm_micros or line.cpm_micros)
    negotiated = micros_to_decimal(line.cpm_micros) if line.negotiation_status == NegotiationStatus.AGREED else None
    booked = deal.cpm
    delivery = getattr(deal, "delivery", None)
    delivered = None
    if delivery is not None and delivery.impressions:
        delivered = (delivery.spend * 1000 / delivery.impressions).quantize(CENT)
    agreed = negotiated if negotiated is not None else quoted
    allowed = 1 + settings.BOOKING_TOLERANCE_PCT / 100
    flags = []
    if booked > agreed * allowed:
        what = "negotiated" if negotiated is not None else "quoted"
        flags.append(f"booked at ${booked:,.2f} CPM, above the {what} ${agreed:,.2f}")
    if (
        delivery is not None
        and delivered is not None
        and delivery.impressions >= MIN_IMPRESSIONS_TO_JUDGE
        and delivered > booked * allowed
    ):
        flags.append(f"billed ${delivered:,.2f} CPM on delivery, above the booked ${booked:,.2f}")
    return PriceReconciliation(quoted, negotiated, booked, delivered, flags)
