from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("roles/", views.roles, name="role_list"),
    path("roles/<int:pk>/revoke/", views.role_revoke, name="role_revoke"),
    path("delegations/", views.delegations, name="delegation_list"),
    path("delegations/<int:pk>/revoke/", views.delegation_revoke, name="delegation_revoke"),
]
