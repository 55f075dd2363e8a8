from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("roles/", views.roles, name="role_list"),
    path("catalogue/<slug:section>/", views.catalogue_list, name="catalogue_list"),
    path("catalogue/<slug:section>/new/", views.catalogue_edit, name="catalogue_add"),
    path("catalogue/<slug:section>/<int:pk>/", views.catalogue_edit, name="catalogue_edit"),
    path("policies/", views.policies, name="policy_list"),
    path("scim-tokens/", views.scim_tokens, name="scim_tokens"),
    path("lockouts/", views.lockout_list, name="lockout_list"),
    path("lockouts/unlock/", views.lockout_unlock, name="lockout_unlock"),
    path(
        "policies/proposals/<int:pk>/decide/",
        views.policy_proposal_decide,
        name="policy_proposal_decide",
    ),
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
    path(
        "access-reviews/items/<int:pk>/certify/",
        views.access_review_certify,
        name="access_review_certify",
    ),
    path("roles/<int:pk>/revoke/", views.role_revoke, name="role_revoke"),
    path("delegations/", views.delegations, name="delegation_list"),
    path("delegations/<int:pk>/revoke/", views.delegation_revoke, name="delegation_revoke"),
]
