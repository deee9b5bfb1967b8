from __future__ import annotations

from django.urls import path

from buyer.sellers import views

app_name = "sellers"

urlpatterns = [
    path("", views.seller_list, name="list"),
    path("new/", views.seller_create, name="create"),
    path("<int:seller_id>/", views.seller_edit, name="edit"),
    path("<int:seller_id>/disable/", views.seller_disable, name="disable"),
    path("<int:seller_id>/enable/", views.seller_enable, name="enable"),
    path("<int:seller_id>/test-connection/", views.seller_test_connection, name="test_connection"),
    path("<int:seller_id>/reset-breaker/", views.seller_reset_breaker, name="reset_breaker"),
]
