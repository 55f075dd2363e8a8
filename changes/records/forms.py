"""Change forms: they read wall times and names; the services decide what is allowed."""

from __future__ import annotations

from zoneinfo import ZoneInfo, available_timezones

from django import forms

from changes.records.models import ChangeRecord
from changes.records.services import MANUAL_MOVES, ChangeInput
from changes.wall_time import WallTimeField, wall_exists, wall_to_instant
from governance.models import Service, User


class ChangeForm(forms.Form):
    """Open or edit a change. The planned window is in wall time of the chosen time zone."""

    title = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=ChangeRecord.Type.choices, initial=ChangeRecord.Type.NORMAL)
    risk = forms.ChoiceField(choices=ChangeRecord.Level.choices, initial="moderate")
    impact = forms.ChoiceField(choices=ChangeRecord.Level.choices, initial="moderate")
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.none(),
        help_text="The services the change affects; you must be a release manager of each.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    time_zone = forms.ChoiceField(
        choices=[], initial="UTC", help_text="The planned window is read in this zone."
    )
    planned_start = WallTimeField(required=False, label="Planned start")
    planned_end = WallTimeField(required=False, label="Planned end")
    implementer = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True, is_service_account=False).order_by("username"),
        required=False,
        to_field_name="username",
    )
    implementation_plan = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    test_plan = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    backout_plan = forms.CharField(
        required=False, label="Back-out plan", widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, services=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["services"].queryset = (
            services if services is not None else Service.objects.none()
        ).order_by("name")
        self.fields["time_zone"].choices = [(z, z) for z in sorted(available_timezones())]

    def clean(self) -> dict:
        data = super().clean()
        zone_name = data.get("time_zone")
        if not zone_name:
            return data
        zone = ZoneInfo(zone_name)
        for name in ("planned_start", "planned_end"):
            wall = data.get(name)
            if wall is not None and not wall_exists(wall, zone):
                self.add_error(name, f"{wall:%Y-%m-%d %H:%M} does not exist in {zone_name}.")
        return data

    def to_input(self) -> ChangeInput:
        data = self.cleaned_data
        zone = ZoneInfo(data["time_zone"])

        def instant(wall):
            return wall_to_instant(wall, zone) if wall else None

        return ChangeInput(
            title=data["title"],
            services=list(data["services"]),
            type=data["type"],
            description=data["description"],
            risk=data["risk"],
            impact=data["impact"],
            planned_start=instant(data["planned_start"]),
            planned_end=instant(data["planned_end"]),
            time_zone=data["time_zone"],
            implementer=data["implementer"],
            implementation_plan=data["implementation_plan"],
            test_plan=data["test_plan"],
            backout_plan=data["backout_plan"],
        )

    @classmethod
    def initial_for(cls, change: ChangeRecord) -> dict:
        def wall(instant):
            return instant.astimezone(change.zone).replace(tzinfo=None) if instant else None

        return {
            "title": change.title,
            "type": change.type,
            "risk": change.risk,
            "impact": change.impact,
            "services": list(change.services.all()),
            "description": change.description,
            "time_zone": change.time_zone,
            "planned_start": wall(change.planned_start),
            "planned_end": wall(change.planned_end),
            "implementer": change.implementer.username if change.implementer else None,
            "implementation_plan": change.implementation_plan,
            "test_plan": change.test_plan,
            "backout_plan": change.backout_plan,
        }


class MoveForm(forms.Form):
    """Move a change along its life cycle by hand, with a reason (and a close code to close)."""

    to = forms.ChoiceField(choices=ChangeRecord.State.choices, label="Move to")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    close_code = forms.ChoiceField(
        choices=[("", "—"), *ChangeRecord.CloseCode.choices],
        required=False,
        help_text="Needed to close.",
    )

    def __init__(self, *args, change: ChangeRecord, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        allowed = MANUAL_MOVES[change.state]
        self.fields["to"].choices = [(s, ChangeRecord.State(s).label) for s in allowed]
        if ChangeRecord.State.CLOSED not in allowed:
            del self.fields["close_code"]  # only closing asks for one
