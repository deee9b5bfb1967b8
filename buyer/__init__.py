"""The media-buyer agent's project package: settings, URLs, the Celery app and the cross-cutting parts."""

from buyer.celery import app as celery_app

__version__ = "0.1.0"
__all__ = ["__version__", "celery_app"]
