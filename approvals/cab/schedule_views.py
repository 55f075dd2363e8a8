"""Administrators' CAB pages: the meeting series (schedules) and one-off meetings."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from changes.cab import services as cab
from changes.cab.forms import MeetingForm, ScheduleForm
from changes.cab.models import CabSchedule
from changes.cab.recurrence import occurrences
from governance.authority.decorators import administrator_required
from governance.exceptions import GovernanceError
from governance.forms import form_errors_from

UPCOMING_SHOWN = 6  # next meetings listed beside each schedule


@administrator_required
@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    """Every schedule with its rule in words and its next meetings' local times."""
    now = timezone.now()
    schedules = CabSchedule.objects.prefetch_related("members", "services").order_by("name")
    rows = [
        {
            "schedule": schedule,
            "next": [
                start.astimezone(schedule.zone)
                for start in occurrences(schedule, now, now + timedelta(days=120))
            ][:UPCOMING_SHOWN],
        }
        for schedule in schedules
    ]
    return render(request, "approvals/cab/schedule_list.html", {"rows": rows})


@administrator_required
@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create a schedule, or change one."""
    schedule = get_object_or_404(CabSchedule, pk=pk) if pk else None
    initial = ScheduleForm.initial_for(schedule) if schedule else None
    form = ScheduleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            cab.save_schedule(data=form.to_input(), actor=request.user, schedule=schedule)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request, "Schedule saved; its meetings are created up to 28 days ahead."
            )
            return redirect("cab:schedule_list")
    context = {"form": form, "schedule": schedule}
    return render(request, "approvals/cab/schedule_edit.html", context)


@administrator_required
@require_http_methods(["GET", "POST"])
def meeting_new(request: HttpRequest) -> HttpResponse:
    """Call a one-off meeting."""
    form = MeetingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            meeting = cab.create_meeting(data=form.to_input(), actor=request.user)
        except GovernanceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Meeting scheduled.")
            return redirect("cab:meeting_detail", pk=meeting.pk)
    return render(request, "approvals/cab/meeting_new.html", {"form": form})
