"""The Integrations page under /approvals/integrations/ (the hooks' routes are in `urls.py`)."""

from django.urls import path

from approvals.pipelines import views

app_name = "pipelines-pages"

urlpatterns = [
    path("", views.integrations, name="integrations"),
]
