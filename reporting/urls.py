from django.urls import include, path

from reporting import emergencies, home, views

app_name = "reporting"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("reports/", home.reports_home, name="home"),
    path("reports/emergencies/", emergencies.emergency_frequency, name="emergency_frequency"),
    path(
        "reports/emergencies.csv",
        emergencies.emergency_frequency,
        {"as_csv": True},
        name="emergency_frequency_csv",
    ),
    path("", include("reporting.ledger.urls")),
    path("", include("reporting.compliance.urls")),
    path("", include("reporting.evidence.urls")),
    path("", include("reporting.audit.urls")),
    path("metrics/", include("reporting.metrics.urls")),
    path("reviews/", include("reporting.reviews.urls")),
    path("anomalies/", include("reporting.anomalies.urls")),
    path("lake/", include("reporting.lake.urls")),
]
