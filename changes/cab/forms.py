"""CAB forms: a schedule from a few plain choices, a one-off meeting, and a meeting's live
actions. They read and normalise; changes.cab.services decides what is allowed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from django import forms

from changes.cab.models import AgendaItem, CabSchedule
from changes.cab.recurrence import WEEKDAYS, Rule
from changes.cab.services import MeetingInput, ScheduleInput, outcomes_for
from changes.records.models import ChangeRecord
from changes.records.selectors import changes_visible_to
from changes.wall_time import WallTimeField, wall_to_instant
from governance.models import Service, User

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKS = [(1, "First"), (2, "Second"), (3, "Third"), (4, "Fourth"), (-1, "Last")]


def _people() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(is_active=True, is_service_account=False).order_by("username"),
        widget=forms.CheckboxSelectMultiple,
        help_text="Members mark themselves present; outcomes need the quorum present.",
    )


def _services() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Service.objects.order_by("name"),
        required=False,
        help_text="Leave empty for a board that covers every service.",
    )


class _ZoneForm(forms.Form):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(z, z) for z in sorted(available_timezones())]


class ScheduleForm(_ZoneForm):
    """A recurring meeting: weekly, fortnightly or monthly on chosen days, at a local time."""

    name = forms.CharField(max_length=100)
    frequency = forms.ChoiceField(
        choices=[("weekly", "Weekly"), ("fortnightly", "Fortnightly"), ("monthly", "Monthly")]
    )
    days = forms.MultipleChoiceField(
        choices=list(zip(WEEKDAYS, DAY_NAMES, strict=True)), widget=forms.CheckboxSelectMultiple
    )
    week_of_month = forms.TypedChoiceField(
        choices=WEEKS,
        coerce=int,
        initial=1,
        required=False,
        empty_value=1,
        help_text="Monthly meetings only.",
    )
    first_day = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), help_text="No meeting before this day."
    )
    local_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}))
    time_zone = forms.ChoiceField(choices=[], initial="UTC")
    duration_minutes = forms.IntegerField(min_value=15, max_value=480, initial=60)
    quorum = forms.IntegerField(min_value=1, max_value=50, initial=2)
    members = _people()
    services = _services()
    active = forms.BooleanField(required=False, initial=True)

    def to_input(self) -> ScheduleInput:
        data = self.cleaned_data
        return ScheduleInput(
            name=data["name"].strip(),
            rule=Rule(data["frequency"], tuple(data["days"]), data["week_of_month"]),
            first_day=data["first_day"],
            local_time=data["local_time"],
            time_zone=data["time_zone"],
            duration_minutes=data["duration_minutes"],
            quorum=data["quorum"],
            members=list(data["members"]),
            services=list(data["services"]),
            active=data["active"],
        )

    @classmethod
    def initial_for(cls, schedule: CabSchedule) -> dict:
        rule = Rule.from_rrule(schedule.rrule)
        local = schedule.first_start.astimezone(schedule.zone)
        return {
            "name": schedule.name,
            "frequency": rule.frequency,
            "days": list(rule.days),
            "week_of_month": rule.week_of_month,
            "first_day": local.date(),
            "local_time": local.time().replace(tzinfo=None),
            "time_zone": schedule.time_zone,
            "duration_minutes": schedule.duration_minutes,
            "quorum": schedule.quorum,
            "members": list(schedule.members.all()),
            "services": list(schedule.services.all()),
            "active": schedule.active,
        }


class MeetingForm(_ZoneForm):
    """A one-off meeting; its start is a wall time in the chosen zone."""

    title = forms.CharField(max_length=150)
    start = WallTimeField(help_text="Local wall time, e.g. 2026-12-10T14:00.")
    time_zone = forms.ChoiceField(choices=[], initial="UTC")
    duration_minutes = forms.IntegerField(min_value=15, max_value=480, initial=60)
    quorum = forms.IntegerField(min_value=1, max_value=50, initial=2)
    members = _people()
    services = _services()

    def to_input(self) -> MeetingInput:
        data = self.cleaned_data
        start: datetime = data["start"]
        return MeetingInput(
            title=data["title"].strip(),
            starts_at=wall_to_instant(start, ZoneInfo(data["time_zone"])),
            duration_minutes=data["duration_minutes"],
            time_zone=data["time_zone"],
            quorum=data["quorum"],
            members=list(data["members"]),
            services=list(data["services"]),
        )


class OutcomeForm(forms.Form):
    """An item's outcome and minutes; the one-time code when the release's stage asks for one."""

    outcome = forms.ChoiceField(
        choices=AgendaItem.Outcome.choices,
        error_messages={"required": "Choose an outcome."},
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    minutes = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(
            attrs={
                "rows": 2,
                "class": "form-control form-control-sm",
                "placeholder": "What was discussed and decided; actions with owners.",
            }
        ),
        error_messages={"required": "Minutes are required for every outcome."},
    )
    step_up_code = forms.CharField(
        max_length=10,
        required=False,
        label="One-time code",
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "class": "form-control form-control-sm",
            }
        ),
    )

    def __init__(self, *args, item: AgendaItem | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if item is not None:
            allowed = outcomes_for(item.kind)
            # No outcome preselected: an approval must never be one click on a default away.
            self.fields["outcome"].choices = [("", "Choose an outcome")] + [
                (value, label) for value, label in AgendaItem.Outcome.choices if value in allowed
            ]

    def clean_minutes(self) -> str:
        value = self.cleaned_data["minutes"].strip()
        if not value:
            raise forms.ValidationError("Minutes are required for every outcome.")
        return value


class ItemForm(forms.Form):
    """An item a member adds by hand."""

    title = forms.CharField(max_length=250)
    detail = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )
    change_ref = forms.CharField(required=False, max_length=64, label="Change (optional)")

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_change_ref(self) -> ChangeRecord | None:
        ref = self.cleaned_data["change_ref"].strip()
        if not ref:
            return None
        # Only changes the member may see: the answer never says whether another one exists.
        change = changes_visible_to(self.user).filter(ref__iexact=ref).first()
        if change is None:
            raise forms.ValidationError(f"No change {ref} that you can see.")
        return change


class CloseForm(forms.Form):
    """Closing a meeting, with its general minutes."""

    notes = forms.CharField(
        required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 3})
    )
