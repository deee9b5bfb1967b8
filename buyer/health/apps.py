from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "buyer.health"
    label = "health"
    verbose_name = "Health"
