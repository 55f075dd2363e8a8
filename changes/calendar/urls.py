"""The change schedule: month and week calendar, and the iCalendar feed."""

from django.urls import path

from changes.calendar import views

urlpatterns = [
    path("calendar/", views.calendar, name="calendar"),
    path("calendar.ics", views.calendar_feed, name="calendar_feed"),
]
