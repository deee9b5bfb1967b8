from __future__ import annotations

from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("", views.jobs, name="jobs"),
    path("jobs/new/", views.job_new, name="job_new"),
    path("jobs/new/brief/", views.brief_intake, name="brief_intake"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:job_id>/row/", views.job_row, name="job_row"),
    path("jobs/<uuid:job_id>/status/", views.job_status, name="job_status"),
    path("jobs/<uuid:job_id>/timeline/", views.job_timeline, name="job_timeline"),
    path("jobs/<uuid:job_id>/selection/", views.job_selection, name="job_selection"),
    path("jobs/<uuid:job_id>/approve/confirm/", views.job_approve_confirm, name="job_approve_confirm"),
    path("jobs/<uuid:job_id>/approve/", views.job_approve, name="job_approve"),
    path("jobs/<uuid:job_id>/plan/", views.job_plan_review, name="job_plan_review"),
    path("jobs/<uuid:job_id>/summary/", views.job_summary, name="job_summary"),
    path("jobs/<uuid:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<uuid:job_id>/recommendations.csv", views.job_lines_csv, name="job_lines_csv"),
    path("deals/", views.deals, name="deals"),
    path("deals/<int:pk>/", views.deal_detail, name="deal_detail"),
    path("deals/<int:pk>/decide/", views.deal_decide, name="deal_decide"),
]
