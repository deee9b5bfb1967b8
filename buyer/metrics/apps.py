from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "buyer.metrics"
    label = "metrics"
    verbose_name = "Metrics"
