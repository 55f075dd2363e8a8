"""The catalogue's sections (services, teams, people, environments), under /governance/."""

from django.urls import path

from governance.catalogue import views

urlpatterns = [
    path("catalogue/<slug:section>/", views.catalogue_list, name="catalogue_list"),
    path("catalogue/<slug:section>/new/", views.catalogue_edit, name="catalogue_add"),
    path("catalogue/<slug:section>/<int:pk>/", views.catalogue_edit, name="catalogue_edit"),
]
