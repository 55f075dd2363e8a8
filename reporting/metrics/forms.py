"""The metrics pages' filters: a period, a service, team and environment, and the dimension
time to approve is broken down by."""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from governance.models import Environment, Service, Team
from reporting.metrics.selectors import Filters

DEFAULT_MONTHS = 6
LONGEST_PERIOD = timedelta(days=3 * 366)
BREAKDOWNS = [
    ("change_type", "Change type"),
    ("environment", "Environment"),
    ("service", "Service"),
    ("team", "Team"),
    ("stage", "Stage"),
    ("approver", "Approver"),
]


class MetricsForm(forms.Form):
    """Validates the query string; the services offered are only those the viewer may see."""

    start = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))
    service = forms.ModelChoiceField(Service.objects.none(), required=False, to_field_name="slug")
    team = forms.ModelChoiceField(Team.objects.all(), required=False, to_field_name="slug")
    environment = forms.ModelChoiceField(
        Environment.objects.all(), required=False, to_field_name="slug"
    )
    by = forms.ChoiceField(choices=BREAKDOWNS, required=False, label="Time to approve by")

    def __init__(self, *args, scope: QuerySet[Service] | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        services = Service.objects.all() if scope is None else scope
        self.fields["service"].queryset = services.order_by("name")
        for name, empty in (("service", "Any service"), ("team", "Any team")):
            self.fields[name].empty_label = empty
        self.fields["environment"].empty_label = "Any environment"
        for name, form_field in self.fields.items():
            kind = "form-control" if name in ("start", "end") else "form-select"
            form_field.widget.attrs["class"] = f"{kind} {kind}-sm"

    @staticmethod
    def with_defaults(query) -> dict:
        """`query` with the default period and breakdown filled in, so the form shows them."""
        data = query.dict()
        data["by"] = data.get("by") or "change_type"
        data["end"] = data.get("end") or timezone.localdate().isoformat()
        if not data.get("start"):
            try:
                end = forms.DateField().to_python(data["end"])
            except forms.ValidationError:
                end = timezone.localdate()  # the form reports the unreadable end date itself
            data["start"] = (end - relativedelta(months=DEFAULT_MONTHS)).isoformat()
        return data

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("start", "The period must start on or before its end.")
        elif start and end and end - start > LONGEST_PERIOD:
            self.add_error("start", "Choose a period of at most three years.")
        return data

    def filters(self, *, now: datetime, scope: QuerySet[Service] | None) -> Filters:
        data = self.cleaned_data
        return Filters(
            start=data["start"],
            end=data["end"],
            now=now,
            service=data["service"],
            team=data["team"],
            environment=data["environment"],
            scope=scope,
        )
