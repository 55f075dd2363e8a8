"""The quarterly review and workflow feedback, under /reviews/ (namespace `reporting:`)."""

from django.urls import path

from reporting.reviews import views

urlpatterns = [
    path("", views.review_list, name="quarterly_reviews"),
    path("<int:pk>/", views.review_detail, name="quarterly_detail"),
    path("<int:pk>/export.csv", views.review_export, name="quarterly_export"),
    path("<int:pk>/close/", views.review_close, name="quarterly_close"),
    path(
        "<int:pk>/items/<int:item_pk>/outcome/",
        views.item_outcome,
        name="quarterly_outcome",
    ),
    path("feedback/", views.feedback_by_rule, name="workflow_feedback"),
    path("feedback.csv", views.feedback_by_rule, {"as_csv": True}, name="workflow_feedback_csv"),
    path("feedback/releases/<int:pk>/", views.release_feedback, name="release_workflow_feedback"),
]
