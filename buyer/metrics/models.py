"""Step durations as the workers measure them, kept in the database so every web instance reports every worker's
(a worker may run on another machine than the web process that is scraped)."""

from __future__ import annotations

from django.db import models

# Upper bounds (seconds) of the step-duration buckets; the last column counts everything slower.
STEP_BOUNDS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BUCKET_FIELDS: tuple[str, ...] = tuple(f"bucket_{i}" for i in range(len(STEP_BOUNDS) + 1))


class StepOutcome(models.TextChoices):
    OK = "ok"
    ERROR = "error"


class StepTiming(models.Model):
    """A histogram of one stage's step durations with one outcome: how many fell in each bucket (not cumulative;
    ``bucket_<i>`` is above ``STEP_BOUNDS[i-1]`` and at most ``STEP_BOUNDS[i]``), their count and sum.

    Only ever incremented, in one ``UPDATE``, so the counters Prometheus derives from it never go down."""

    stage = models.CharField(max_length=32)
    outcome = models.CharField(max_length=8, choices=StepOutcome.choices)
    count = models.PositiveBigIntegerField(default=0)
    sum_seconds = models.FloatField(default=0.0)
    bucket_0 = models.PositiveBigIntegerField(default=0)
    bucket_1 = models.PositiveBigIntegerField(default=0)
    bucket_2 = models.PositiveBigIntegerField(default=0)
    bucket_3 = models.PositiveBigIntegerField(default=0)
    bucket_4 = models.PositiveBigIntegerField(default=0)
    bucket_5 = models.PositiveBigIntegerField(default=0)
    bucket_6 = models.PositiveBigIntegerField(default=0)
    bucket_7 = models.PositiveBigIntegerField(default=0)
    bucket_8 = models.PositiveBigIntegerField(default=0)
    bucket_9 = models.PositiveBigIntegerField(default=0)
    bucket_10 = models.PositiveBigIntegerField(default=0)
    bucket_11 = models.PositiveBigIntegerField(default=0)
    bucket_12 = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stage", "outcome"], name="one_step_timing_per_stage_outcome")]

    def __str__(self) -> str:
        return f"{self.stage} {self.outcome}: {self.count}"

    def buckets(self) -> list[int]:
        return [getattr(self, name) for name in BUCKET_FIELDS]
