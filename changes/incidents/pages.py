"""The incidents' pages under /changes/integrations/ (the API's routes are in `urls.py`)."""

from django.urls import path

from changes.incidents import views

app_name = "changes-incidents"

urlpatterns = [
    path("pagerduty/", views.pagerduty_settings, name="pagerduty"),
]
