"""Freeze forms: they read wall times and names; the services decide what is allowed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import available_timezones

from django import forms

from changes.freezes.models import Freeze
from changes.freezes.services import MAX_OVERRIDE_HOURS, FreezeInput
from changes.wall_time import WallTimeField
from governance.models import Environment, Service, Team


class FreezeForm(forms.Form):
    """Create or edit a freeze. Start and end are wall times in the chosen time zone."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Freeze.Kind.choices, widget=forms.RadioSelect)
    time_zone = forms.ChoiceField(
        choices=[], initial="UTC", help_text="Start, end and skipped dates are read in this zone."
    )
    start = WallTimeField(help_text="Local wall time, e.g. 2026-12-24T00:00.")
    end = WallTimeField(help_text="Local wall time; for a recurring freeze, the first end.")
    recurrence = forms.CharField(
        required=False,
        max_length=500,
        label="Repeats (RRULE)",
        help_text="Empty for a one-off freeze; e.g. FREQ=WEEKLY;BYDAY=FR for every Friday, "
        "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-7 for each quarter's last week.",
    )
    exdates = forms.CharField(
        required=False,
        label="Skipped occurrences",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Local start times of occurrences to skip (EXDATE), one a line.",
    )
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.order_by("order", "name"),
        widget=forms.CheckboxSelectMultiple,
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.order_by("name"),
        required=False,
        help_text="Leave services and teams empty to freeze every service.",
    )
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.order_by("name"),
        required=False,
        help_text="Every service a chosen team owns (as primary owner).",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(z, z) for z in sorted(available_timezones())]

    def clean_exdates(self) -> list[datetime]:
        field = WallTimeField()
        lines = [line.strip() for line in self.cleaned_data["exdates"].splitlines()]
        return [field.to_python(line) for line in lines if line]

    def to_input(self) -> FreezeInput:
        data = self.cleaned_data
        return FreezeInput(
            name=data["name"],
            kind=data["kind"],
            time_zone=data["time_zone"],
            local_start=data["start"],
            local_end=data["end"],
            environments=list(data["environments"]),
            services=list(data["services"]),
            teams=list(data["teams"]),
            recurrence=data["recurrence"],
            exdates=data["exdates"],
            reason=data["reason"],
        )

    @classmethod
    def initial_for(cls, freeze: Freeze) -> dict:
        return {
            "name": freeze.name,
            "kind": freeze.kind,
            "time_zone": freeze.time_zone,
            "start": freeze.local_start,
            "end": freeze.local_end,
            "recurrence": freeze.recurrence,
            "exdates": "\n".join(freeze.exdates),
            "environments": list(freeze.environments.all()),
            "services": list(freeze.services.all()),
            "teams": list(freeze.teams.all()),
            "reason": freeze.reason,
        }


class EndFreezeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Why the freeze ends early; recorded in the ledger.",
    )


class OverrideRequestForm(forms.Form):
    """Ask to let one release through one of the freezes holding it."""

    freeze = forms.ModelChoiceField(queryset=Freeze.objects.none())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    hours = forms.IntegerField(
        min_value=1,
        max_value=MAX_OVERRIDE_HOURS,
        initial=4,
        help_text=f"How long the override lasts once asked (at most {MAX_OVERRIDE_HOURS}).",
    )

    def __init__(self, *args, freezes=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["freeze"].queryset = freezes if freezes is not None else Freeze.objects.none()
