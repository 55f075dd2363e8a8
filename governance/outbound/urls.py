"""Subscriptions and the outbox, under /governance/."""

from django.urls import path

from governance.outbound import views

urlpatterns = [
    path("subscriptions/", views.subscription_list, name="subscription_list"),
    path(
        "subscriptions/<int:pk>/remove/",
        views.subscription_action,
        {"action": "remove"},
        name="subscription_remove",
    ),
    path(
        "subscriptions/<int:pk>/test/",
        views.subscription_action,
        {"action": "test"},
        name="subscription_test",
    ),
    path("outbox/", views.outbox_list, name="outbox_list"),
    path("outbox/<int:pk>/redeliver/", views.outbox_redeliver, name="outbox_redeliver"),
]
