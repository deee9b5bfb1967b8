from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "buyer.events"
    label = "events"
    verbose_name = "Events"
