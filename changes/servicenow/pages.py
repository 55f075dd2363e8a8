"""The administrators' ServiceNow page, under /changes/integrations/servicenow/."""

from django.urls import path

from changes.servicenow import views

app_name = "changes-servicenow"

urlpatterns = [
    path("", views.servicenow_settings, name="settings"),
]
