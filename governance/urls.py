from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("delegations/", views.delegations, name="delegation_list"),
    path("delegations/<int:pk>/revoke/", views.delegation_revoke, name="delegation_revoke"),
]
