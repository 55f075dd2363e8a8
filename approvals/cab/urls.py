"""The CAB's pages under /cab/: its queue, meetings and agendas."""

from django.urls import path

from approvals.cab import schedule_views, views

app_name = "cab"

urlpatterns = [
    path("", views.cab_queue, name="queue"),
    path("meetings/", views.meeting_list, name="meeting_list"),
    path("meetings/new/", schedule_views.meeting_new, name="meeting_new"),
    path("meetings/<int:pk>/", views.meeting_detail, name="meeting_detail"),
    path("meetings/<int:pk>/updates/", views.meeting_updates, name="meeting_updates"),
    path("meetings/<int:pk>/attendance/", views.meeting_attendance, name="meeting_attendance"),
    path("meetings/<int:pk>/open/", views.meeting_open, name="meeting_open"),
    path("meetings/<int:pk>/close/", views.meeting_close, name="meeting_close"),
    path("meetings/<int:pk>/items/", views.item_add, name="item_add"),
    path(
        "meetings/<int:pk>/items/<int:item_pk>/outcome/",
        views.item_outcome,
        name="item_outcome",
    ),
    path("meetings/<int:pk>/minutes.pdf", views.meeting_minutes, name="meeting_minutes"),
    path("schedules/", schedule_views.schedule_list, name="schedule_list"),
    path("schedules/new/", schedule_views.schedule_edit, name="schedule_new"),
    path("schedules/<int:pk>/edit/", schedule_views.schedule_edit, name="schedule_edit"),
]
