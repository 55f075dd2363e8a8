"""The policy editor, under /policies/editor/."""

from django.urls import path

from approvals.policy_editor import views

app_name = "policy_editor"

urlpatterns = [
    path("", views.editor_home, name="editor"),
    path("validate/", views.policy_validate, name="policy_validate"),
    path("<slug:slug>/", views.policy_edit, name="policy_edit"),
    path("<slug:slug>/propose/", views.policy_propose, name="policy_propose"),
]
