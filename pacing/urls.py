from __future__ import annotations

from django.urls import path

from pacing import views

app_name = "pacing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("campaigns/<uuid:job_id>/", views.campaign, name="campaign"),
    path("campaigns/<uuid:job_id>/refresh/", views.campaign_refresh, name="campaign_refresh"),
    path("campaigns/<uuid:job_id>/refresh/status/", views.campaign_refresh_status, name="campaign_refresh_status"),
    path("campaigns/<uuid:job_id>/delivery.csv", views.delivery_csv, name="delivery_csv"),
    path("proposals/<int:proposal_id>/confirm/", views.proposal_confirm, name="proposal_confirm"),
    path("proposals/<int:proposal_id>/decide/", views.proposal_decide, name="proposal_decide"),
]
