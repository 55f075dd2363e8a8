"""Role grants, delegations and access reviews, under /governance/."""

from django.urls import path

from governance.authority import views

urlpatterns = [
    path("roles/", views.roles, name="role_list"),
    path("roles/<int:pk>/revoke/", views.role_revoke, name="role_revoke"),
    path("delegations/", views.delegations, name="delegation_list"),
    path("delegations/<int:pk>/revoke/", views.delegation_revoke, name="delegation_revoke"),
    path("access-reviews/", views.access_reviews, name="access_review_list"),
    path("access-reviews/<int:pk>/", views.access_review_detail, name="access_review_detail"),
    path(
        "access-reviews/<int:pk>/export.csv",
        views.access_review_export,
        name="access_review_export",
    ),
    path(
        "access-reviews/<int:pk>/certify/",
        views.access_review_certify_many,
        name="access_review_certify_many",
    ),
]
