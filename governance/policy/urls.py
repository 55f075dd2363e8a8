"""The policy page and four-eyes proposals, under /governance/."""

from django.urls import path

from governance.policy import views

urlpatterns = [
    path("policies/", views.policies, name="policy_list"),
    path(
        "policies/proposals/<int:pk>/decide/",
        views.policy_proposal_decide,
        name="policy_proposal_decide",
    ),
]
