from __future__ import annotations

from django.urls import path

from buyer.events import views

app_name = "events"

urlpatterns = [
    path("events/", views.feed, name="feed"),
]
