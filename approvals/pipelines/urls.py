"""The providers' hooks, mounted under /integrations/."""

from django.urls import path

from approvals.pipelines import webhooks

app_name = "pipelines"

urlpatterns = [
    path("github/", webhooks.github_webhook, name="github"),
    path("gitlab/", webhooks.gitlab_webhook, name="gitlab"),
]
