from django.urls import path

from changes.incidents import api

app_name = "incidents-api"

urlpatterns = [
    path("incidents/", api.IncidentReport.as_view(), name="incident-report"),
]
