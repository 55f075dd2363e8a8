"""Post-implementation reviews and post-mortems, under /changes/reviews/."""

from django.urls import path

from changes.reviews import views

urlpatterns = [
    path("", views.review_list, name="review_list"),
    path("<int:pk>/", views.review_detail, name="review_detail"),
    path("<int:pk>/complete/", views.review_complete, name="review_complete"),
    path("<int:pk>/actions/", views.action_add, name="review_action_add"),
    path(
        "<int:pk>/actions/<int:action_pk>/done/",
        views.action_done,
        name="review_action_done",
    ),
]
