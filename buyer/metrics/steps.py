"""Recording a step's duration (the workers call it once a step has run)."""

from __future__ import annotations

import bisect
import logging

from django.db import DatabaseError
from django.db.models import F

from buyer.metrics.models import BUCKET_FIELDS, STEP_BOUNDS, StepTiming

logger = logging.getLogger(__name__)


def step_timing_record(*, stage: str, outcome: str, seconds: float) -> None:
    """Count one step of ``stage`` that took ``seconds`` and ended with ``outcome``. A metric never fails a
    step: a database error here is logged and the observation dropped."""
    seconds = max(0.0, seconds)
    bucket = BUCKET_FIELDS[bisect.bisect_left(STEP_BOUNDS, seconds)]
    increments = {"count": F("count") + 1, "sum_seconds": F("sum_seconds") + seconds, bucket: F(bucket) + 1}
    rows = StepTiming.objects.filter(stage=stage, outcome=outcome)
    try:
        if not rows.update(**increments):
            StepTiming.objects.get_or_create(stage=stage, outcome=outcome)
            rows.update(**increments)
    except DatabaseError:
        logger.warning("metrics: the duration of a %s step was not recorded", stage, exc_info=True)
