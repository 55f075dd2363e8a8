from django.urls import path

from reporting.anomalies import views

urlpatterns = [
    path("", views.anomaly_list, name="anomaly_list"),
    path("<int:pk>/acknowledge/", views.anomaly_acknowledge, name="anomaly_acknowledge"),
]
