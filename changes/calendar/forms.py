"""The calendar's filters: view, date, service and team, all from the query string."""

from __future__ import annotations

from django import forms

from governance.models import Service, Team


class CalendarForm(forms.Form):
    """Which period to show and whose entries; services and teams offered are those the
    viewer may see."""

    view = forms.ChoiceField(choices=[("month", "Month"), ("week", "Week")], required=False)
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    service = forms.ModelChoiceField(
        queryset=Service.objects.none(),
        to_field_name="slug",
        required=False,
        empty_label="All services",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), to_field_name="slug", required=False, empty_label="All teams"
    )

    def __init__(self, *args, services, teams, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = services
        self.fields["team"].queryset = teams
