from django.urls import path

from reporting.lake import views

urlpatterns = [
    path("", views.lake_status_page, name="lake_status"),
]
