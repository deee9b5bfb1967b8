from __future__ import annotations

from django.urls import path

from buyer.llm import views

app_name = "llm"

urlpatterns = [
    path("", views.usage, name="usage"),
]
