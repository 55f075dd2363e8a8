"""Emergency bypass frequency: how often each service and team declares an emergency, over time.

The source is the declared emergencies (EmergencyException rows), counted by the week or month
of their declaration (UTC) on the database, grouped by service; per-team numbers follow from each
service's primary owning team. CAB members and administrators only: the page exists for others,
it is just not theirs (403, as the other role-gated pages answer).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.db.models.functions import TruncMonth, TruncWeek
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from approvals.emergencies.models import EmergencyException
from governance.authority.models import Role, RoleAssignment
from governance.authority.services import is_administrator
from governance.models import Service, Team, User
from reporting import charts

DEFAULT_MONTHS = 6
LONGEST_PERIOD = timedelta(days=3 * 366)  # bounds the chart to at most ~160 weekly bars
PAGE_SIZE = 50
TRUNCATE = {"week": TruncWeek, "month": TruncMonth}


class FrequencyForm(forms.Form):
    """The period (from, to, by week or month) and an optional service or team."""

    by = forms.ChoiceField(choices=[("month", "Month"), ("week", "Week")], required=False)
    start = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))
    service = forms.ModelChoiceField(
        Service.objects.order_by("name"), required=False, to_field_name="slug"
    )
    team = forms.ModelChoiceField(Team.objects.all(), required=False, to_field_name="slug")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].empty_label = "Any service"
        self.fields["team"].empty_label = "Any team"
        for name, form_field in self.fields.items():
            kind = "form-select" if name in ("by", "service", "team") else "form-control"
            form_field.widget.attrs["class"] = f"{kind} {kind}-sm"

    @classmethod
    def with_defaults(cls, query) -> dict:
        """`query` with the default period filled in, so the form shows the dates it uses."""
        today = timezone.localdate()
        data = query.dict()
        data["by"] = data.get("by") or "month"
        data["end"] = data.get("end") or today.isoformat()
        if not data.get("start"):
            try:
                end = forms.DateField().to_python(data["end"])
            except forms.ValidationError:
                end = today  # the form reports the unreadable end date itself
            data["start"] = (end - relativedelta(months=DEFAULT_MONTHS)).isoformat()
        return data

    def clean(self) -> dict:
        data = super().clean()
        today = timezone.localdate()
        data["by"] = data.get("by") or "month"
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"] - relativedelta(months=DEFAULT_MONTHS)
        if data["start"] > data["end"]:
            self.add_error("start", "The period must start on or before its end.")
        elif data["end"] - data["start"] > LONGEST_PERIOD:
            self.add_error("start", "Choose a period of at most three years.")
        return data


@dataclass
class Frequency:
    """The numbers behind the page and the CSV, for one period."""

    by: str
    buckets: list[date]
    per_bucket: list[int]
    rows: list[dict]  # one per (bucket, service) with emergencies, in bucket then name order
    services: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.per_bucket)


def may_view(user: User) -> bool:
    """CAB members (a cab_member grant in force, any scope) and administrators."""
    if user.is_staff or is_administrator(user):
        return True
    grants = RoleAssignment.objects.filter(user=user, role=Role.CAB_MEMBER)
    return grants.exclude(expires_at__lte=timezone.now()).exists()


def _buckets(by: str, start: date, end: date) -> list[date]:
    """Every week (from its Monday) or month (from its first day) touching start..end."""
    if by == "week":
        first, step = start - timedelta(days=start.weekday()), relativedelta(weeks=1)
    else:
        first, step = start.replace(day=1), relativedelta(months=1)
    buckets = []
    while first <= end:
        buckets.append(first)
        first += step
    return buckets


def frequency(by: str, start: date, end: date, service=None, team=None) -> Frequency:
    """Count declared emergencies per bucket and service in one GROUP BY query."""
    zone = timezone.get_current_timezone()
    emergencies = EmergencyException.objects.filter(
        starts_at__gte=datetime.combine(start, time.min, zone),
        starts_at__lt=datetime.combine(end + timedelta(days=1), time.min, zone),
    )
    if service is not None:
        emergencies = emergencies.filter(service=service)
    if team is not None:
        emergencies = emergencies.filter(service__team=team)
    grouped = (
        emergencies.annotate(bucket=TRUNCATE[by]("starts_at"))
        .values(
            "bucket", "service__name", "service__slug", "service__team__name", "service__team__slug"
        )
        .annotate(count=Count("pk"), last=Max("starts_at"))
        .order_by("bucket", "service__slug")
    )
    rows = [{**row, "bucket": timezone.localtime(row["bucket"]).date()} for row in grouped]
    buckets = _buckets(by, start, end)
    per_bucket = Counter()
    for row in rows:
        per_bucket[row["bucket"]] += row["count"]
    result = Frequency(by, buckets, [per_bucket[b] for b in buckets], rows)
    result.services, result.teams = _per_service(rows), _per_team(rows, buckets)
    return result


def _per_service(rows: list[dict]) -> list[dict]:
    """Services by emergencies declared (most first), with their team and latest declaration."""
    services: dict[str, dict] = {}
    for row in rows:
        entry = services.setdefault(
            row["service__slug"],
            {"name": row["service__name"], "team": row["service__team__name"], "count": 0},
        )
        entry["count"] += row["count"]
        entry["last"] = max(entry.get("last", row["last"]), row["last"])
    return sorted(services.values(), key=lambda s: (-s["count"], s["name"].casefold()))


def _per_team(rows: list[dict], buckets: list[date]) -> list[dict]:
    """Teams by emergencies declared (most first), with their count in every bucket."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        counts[row["service__team__name"]][row["bucket"]] += row["count"]
    teams = [
        {"name": name, "count": sum(c.values()), "per_bucket": [c[b] for b in buckets]}
        for name, c in counts.items()
    ]
    return sorted(teams, key=lambda t: (-t["count"], t["name"].casefold()))


def bucket_label(by: str, bucket: date) -> str:
    """ "Jun 2026" for a month, "w/c 1 Jun 2026" (week commencing Monday) for a week."""
    return f"{bucket:%b %Y}" if by == "month" else f"w/c {bucket.day} {bucket:%b %Y}"


@login_required
@require_GET
def emergency_frequency(request: HttpRequest, as_csv: bool = False) -> HttpResponse:
    """The trend chart, the numbers per service and team, and the same numbers as CSV
    (`emergencies.csv`, or `?format=csv`)."""
    if not may_view(request.user):
        raise PermissionDenied("Emergency bypass frequency is for CAB members and administrators.")
    form = FrequencyForm(FrequencyForm.with_defaults(request.GET))
    wants_csv = as_csv or request.GET.get("format") == "csv"
    if not form.is_valid():
        if wants_csv:
            return _csv_error(form)
        return render(request, "reporting/emergencies.html", {"form": form}, status=400)
    data = form.cleaned_data
    numbers = frequency(data["by"], data["start"], data["end"], data["service"], data["team"])
    if wants_csv:
        return _csv_response(numbers, data)
    context = {
        "form": form,
        "numbers": numbers,
        "chart": trend_chart(numbers),
        "trend": [
            {"label": bucket_label(numbers.by, b), "start": b, "count": n}
            for b, n in zip(numbers.buckets, numbers.per_bucket, strict=True)
        ],
        "team_columns": [short_label(numbers.by, b) for b in numbers.buckets],
        "page": Paginator(numbers.services, PAGE_SIZE).get_page(request.GET.get("page")),
        "period": f"{data['start']:%-d %b %Y} to {data['end']:%-d %b %Y}",
    }
    return render(request, "reporting/emergencies.html", context)


def _csv_error(form: FrequencyForm) -> HttpResponse:
    lines = [f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()]
    return HttpResponse("\n".join(lines) + "\n", status=400, content_type="text/plain")


def _csv_response(numbers: Frequency, data: dict) -> HttpResponse:
    """One line per period and service with emergencies: period start, team, service, count."""
    response = HttpResponse(content_type="text/csv")
    name = f"emergency-frequency-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}-by-{numbers.by}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerows(_csv_lines(numbers))
    return response


def _csv_lines(numbers: Frequency) -> Iterator[list]:
    yield ["period", "period_start", "team", "team_slug", "service", "service_slug", "emergencies"]
    for row in numbers.rows:
        yield [
            numbers.by,
            row["bucket"].isoformat(),
            row["service__team__name"],
            row["service__team__slug"],
            row["service__name"],
            row["service__slug"],
            row["count"],
        ]


# --- The trend chart, drawn on the server as SVG (reporting.charts) -------------------------------


def trend_chart(numbers: Frequency) -> dict:
    """Geometry for the template's SVG: one bar per bucket, ticks and the accessible text."""
    points = zip(numbers.buckets, numbers.per_bucket, strict=True)
    titles = [f"{bucket_label(numbers.by, bucket)}: {_emergencies(n)}" for bucket, n in points]
    return charts.bar_chart(
        [short_label(numbers.by, bucket) for bucket in numbers.buckets],
        [charts.Series("Emergencies", numbers.per_bucket)],
        [titles],
        description=_describe(numbers),
    )


def short_label(by: str, bucket: date) -> str:
    return f"{bucket:%b %Y}" if by == "month" else f"{bucket.day} {bucket:%b}"


def _describe(numbers: Frequency) -> str:
    """The chart in one sentence, for screen readers (the table below has every number)."""
    if not numbers.total:
        return "No emergencies were declared in this period."
    busiest = max(range(len(numbers.buckets)), key=lambda i: numbers.per_bucket[i])
    label = bucket_label(numbers.by, numbers.buckets[busiest])
    return (
        f"{_emergencies(numbers.total)} declared over {len(numbers.buckets)} {numbers.by}s; "
        f"the most, {numbers.per_bucket[busiest]}, in {label}."
    )


def _emergencies(count: int) -> str:
    return f"{count} emergenc{'y' if count == 1 else 'ies'}"
