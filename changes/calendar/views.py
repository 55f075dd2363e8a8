"""The change schedule's pages: the calendar (signed in) and the iCalendar feed (by token)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from changes.calendar import schedule
from changes.calendar.feed import build_feed
from changes.calendar.forms import CalendarForm
from changes.calendar.grid import Period, Shown, lay_out, when
from governance.authority.services import is_administrator
from governance.identity import feeds
from governance.models import Service, Team

FEED_PAST_DAYS = 92
FEED_FUTURE_DAYS = 366
NO_CALENDAR = "No calendar here. Copy the feed URL again from your profile page."


@login_required
@require_GET
def calendar(request: HttpRequest) -> HttpResponse:
    """Month or week of changes, freezes and planned releases on the services the viewer sees."""
    visible = schedule.visible_service_ids(request.user)
    if visible is not None and not visible:
        raise PermissionDenied(
            "The calendar shows releases of services you may view; you have none."
        )
    services = Service.objects.all() if visible is None else Service.objects.filter(pk__in=visible)
    teams = Team.objects.filter(Q(services__in=services) | Q(co_owned_services__in=services))
    form = CalendarForm(request.GET or None, services=services, teams=teams.distinct())
    if form.is_bound and not form.is_valid():
        return render(request, "changes/calendar/calendar.html", {"form": form}, status=400)
    chosen = form.cleaned_data if form.is_bound else {}
    zone = ZoneInfo(request.user.time_zone)
    today = timezone.now().astimezone(zone).date()
    period = Period.around(chosen.get("view") or "month", chosen.get("date") or today, zone)
    ids = _selected(visible, chosen)
    entries = schedule.entries_between(
        service_ids=ids, start=period.start, end=period.end, expand=True
    )
    conflicts = schedule.entry_conflicts(entries, period.start, period.end, visible)
    shown = _shown(entries, conflicts, zone, freeze_links=is_administrator(request.user))
    context = {
        "form": form,
        "period": period,
        "weeks": lay_out(period, shown, today),
        "shown": shown,
        "conflicted": [s for s in shown if s.conflicts],
        "links": _links(period, chosen, today),
        "zone": zone.key,
    }
    return render(request, "changes/calendar/calendar.html", context)


def _shown(entries, conflicts, zone: ZoneInfo, *, freeze_links: bool) -> list[Shown]:
    """Entries as the viewer reads them. Freeze pages are for administrators: nobody else is
    sent to a page that refuses them."""

    def link(thing) -> str:
        return thing.url if freeze_links or thing.kind != "freeze" else ""

    return [
        Shown(
            entry,
            when(entry, zone),
            [replace(c, url=link(c)) for c in conflicts.get(entry.uid, [])],
            link(entry),
        )
        for entry in entries
    ]


def _selected(visible: set[int] | None, chosen: dict) -> set[int] | None:
    """The services whose entries to show: those visible, narrowed by the filters."""
    ids = visible
    if chosen.get("service"):
        ids = {chosen["service"].pk}
    if chosen.get("team"):
        team_ids = schedule.team_service_ids(chosen["team"])
        ids = team_ids if ids is None else ids & team_ids
    return ids


def _links(period: Period, chosen: dict, today) -> dict[str, str]:
    """Query strings for navigation, keeping the filters."""
    keep = {k: chosen[k].slug for k in ("service", "team") if chosen.get(k)}

    def link(view: str, day) -> str:
        return "?" + urlencode({"view": view, "date": day.isoformat(), **keep})

    return {
        "previous": link(period.view, period.previous),
        "next": link(period.view, period.next),
        "today": link(period.view, today),
        "month": link("month", period.anchor),
        "week": link("week", period.anchor),
    }


@require_GET
def calendar_feed(request: HttpRequest) -> HttpResponse:
    """A person's (or, with `team`, one of their teams') schedule as iCalendar. The token is
    the only authentication; a missing or wrong one, an unknown person or a team they are not
    in all get the same 404 with no calendar in it."""
    person = feeds.person_for_token(request.GET.get("token", ""))
    if person is None:
        return HttpResponseNotFound(NO_CALENDAR, content_type="text/plain; charset=utf-8")
    ids, name = schedule.feed_service_ids(person), f"Signoff changes: {person.display_name}"
    if request.GET.get("team"):
        team = Team.objects.filter(slug=request.GET["team"], members=person).first()
        if team is None:
            return HttpResponseNotFound(NO_CALENDAR, content_type="text/plain; charset=utf-8")
        visible = schedule.visible_service_ids(person)
        team_ids = schedule.team_service_ids(team)
        ids, name = (team_ids if visible is None else team_ids & visible), f"Signoff: {team.name}"
    now = timezone.now()
    entries = (
        schedule.entries_between(
            service_ids=ids,
            start=now - timedelta(days=FEED_PAST_DAYS),
            end=now + timedelta(days=FEED_FUTURE_DAYS),
            expand=False,
        )
        if ids
        else []
    )
    response = HttpResponse(build_feed(entries, name=name, now=now))
    response["Content-Type"] = "text/calendar; charset=utf-8"
    response["Cache-Control"] = "private, max-age=300"
    response["Content-Disposition"] = 'inline; filename="signoff-changes.ics"'
    return response
