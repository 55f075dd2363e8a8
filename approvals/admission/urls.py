"""Mounted at /integrations/kubernetes/: the admission webhook each registered cluster calls."""

from django.urls import path

from approvals.admission import views

app_name = "kubernetes"

urlpatterns = [
    path("<slug:cluster>/admission", views.admission_webhook, name="admission"),
]
