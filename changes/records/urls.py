from django.urls import path

from changes.records import views

urlpatterns = [
    path("", views.change_list, name="change_list"),
    path("new/", views.change_edit, name="change_create"),
    path("<int:pk>/", views.change_detail, name="change_detail"),
    path("<int:pk>/edit/", views.change_edit, name="change_edit"),
    path("<int:pk>/move/", views.change_move, name="change_move"),
]
