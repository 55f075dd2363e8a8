from django.urls import path

from reporting.evidence import views

urlpatterns = [
    path("reports/releases/<int:pk>/evidence.json", views.evidence_json, name="evidence_json"),
    path("reports/releases/<int:pk>/evidence.pdf", views.evidence_pdf, name="evidence_pdf"),
]
