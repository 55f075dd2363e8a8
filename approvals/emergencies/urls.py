"""Declaring and following emergencies, under /approvals/emergencies/."""

from django.urls import path

from approvals.emergencies import views

app_name = "emergencies"

urlpatterns = [
    path("", views.emergency_list, name="emergency_list"),
    path("new/", views.emergency_declare, name="emergency_declare"),
    path("<int:pk>/", views.emergency_detail, name="emergency_detail"),
    path("<int:pk>/end/", views.emergency_end, name="emergency_end"),
    path("<int:pk>/review/", views.emergency_review, name="emergency_review"),
]
