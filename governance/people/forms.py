"""A person's own settings form and the time zones it offers."""

from __future__ import annotations

from zoneinfo import available_timezones

from django import forms

from governance.people.models import User

TIME_ZONES = sorted(available_timezones())


class ProfileForm(forms.ModelForm):
    """A person's time zone and working hours, used to route approvals to who is available."""

    time_zone = forms.ChoiceField(choices=[(tz, tz) for tz in TIME_ZONES])

    class Meta:
        model = User
        fields = ["time_zone", "working_hours_start", "working_hours_end"]
        labels = {"working_hours_start": "Working hours from", "working_hours_end": "until"}

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("working_hours_start"), data.get("working_hours_end")
        if start is not None and end is not None and not 0 <= start < end <= 24:
            raise forms.ValidationError("Working hours must satisfy 0 ≤ from < until ≤ 24.")
        return data
