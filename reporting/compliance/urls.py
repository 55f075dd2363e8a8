from django.urls import path

from reporting.compliance import views

urlpatterns = [
    path("reports/compliance/", views.compliance_form, name="compliance"),
    path("reports/compliance.csv", views.compliance_csv, name="compliance_csv"),
    path("reports/compliance.pdf", views.compliance_pdf_view, name="compliance_pdf"),
    path("reports/exports/<int:pk>/", views.export_detail, name="export"),
    path("reports/exports/<int:pk>/download", views.export_download, name="export_download"),
]
