from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from buyer.accounts.roles import user_role
from buyer.llm.mode import llm_mode

# (url name, label, admins only). Pages appear in the navigation once their URL exists.
NAVIGATION = (
    ("campaigns:jobs", "Jobs", False),
    ("campaigns:deals", "Deals", False),
    ("events:feed", "Events", False),
    ("pacing:overview", "Pacing", False),
    ("sellers:list", "Sellers", True),
    ("apikeys:list", "API keys", True),
    ("accounts:users", "Users", True),
    ("llm:usage", "LLM usage", True),
)


def dashboard(request: HttpRequest) -> dict:
    role = user_role(getattr(request, "user", None))
    nav = []
    if role is not None:
        for name, label, admins_only in NAVIGATION:
            if admins_only and role != "admin":
                continue
            try:
                nav.append({"url": reverse(name), "label": label, **_badge(name)})
            except NoReverseMatch:
                continue
    return {
        "user_role": role,
        "user_is_admin": role == "admin",
        "app_version": settings.VERSION,
        "dashboard_nav": nav,
        "decisions_by": llm_mode() if role is not None else None,
    }


def _badge(url_name: str) -> dict:
    """Open pacing alerts on the Pacing link: how many, and whether any is critical."""
    if url_name != "pacing:overview":
        return {}
    from pacing.selectors import open_alert_counts

    counts = open_alert_counts()
    total = counts["critical"] + counts["warning"]
    if not total:
        return {}
    return {"badge": total, "badge_critical": bool(counts["critical"]), "badge_label": f"{total} open pacing alerts"}
