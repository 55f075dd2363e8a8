from django.urls import path

from reporting.audit import views

urlpatterns = [
    path("reports/audit/", views.audit_trail, name="audit"),
]
