from django.urls import path

from reporting import emergencies, views

app_name = "reporting"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("reports/emergencies/", emergencies.emergency_frequency, name="emergency_frequency"),
    path(
        "reports/emergencies.csv",
        emergencies.emergency_frequency,
        {"as_csv": True},
        name="emergency_frequency_csv",
    ),
]
