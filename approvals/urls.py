from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("releases/", views.release_list, name="release_list"),
    path("releases/<int:pk>/", views.release_detail, name="release_detail"),
    path("releases/<int:pk>/updates/", views.release_updates, name="release_updates"),
    path("releases/<int:pk>/decide/", views.release_decide, name="release_decide"),
    path("releases/<int:pk>/withdraw/", views.release_withdraw, name="release_withdraw"),
    path("releases/<int:pk>/revoke/", views.release_revoke, name="release_revoke"),
    path(
        "releases/<int:pk>/freeze-override/",
        views.release_freeze_override,
        name="release_freeze_override",
    ),
    path(
        "releases/<int:pk>/request-again/",
        views.release_request_again,
        name="release_request_again",
    ),
]
