from __future__ import annotations

from django.urls import path

from pacing import views

app_name = "pacing"

urlpatterns = [
    path("", views.overview, name="overview"),
]
