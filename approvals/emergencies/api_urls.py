"""The emergency path's API, under /api/v1/emergencies/."""

from django.urls import path

from approvals.emergencies import api

app_name = "emergencies-api"

urlpatterns = [
    path("emergencies/", api.EmergencyCreate.as_view(), name="emergency-create"),
    path("emergencies/<int:pk>/", api.EmergencyDetail.as_view(), name="emergency-detail"),
]
