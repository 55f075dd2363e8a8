from django.urls import path

from changes.freezes import views

urlpatterns = [
    path("freezes/", views.freeze_list, name="freeze_list"),
    path("freezes/new/", views.freeze_edit, name="freeze_create"),
    path("freezes/<int:pk>/", views.freeze_detail, name="freeze_detail"),
    path("freezes/<int:pk>/edit/", views.freeze_edit, name="freeze_edit"),
    path("freezes/<int:pk>/end/", views.freeze_end, name="freeze_end"),
    path("freezes/overrides/<int:pk>/confirm/", views.override_confirm, name="override_confirm"),
]
