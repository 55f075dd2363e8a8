"""A person's profile, SCIM tokens and sign-in lockouts, under /governance/."""

from django.urls import path

from governance.identity import views

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("scim-tokens/", views.scim_tokens, name="scim_tokens"),
    path("lockouts/", views.lockout_list, name="lockout_list"),
    path("lockouts/unlock/", views.lockout_unlock, name="lockout_unlock"),
]
