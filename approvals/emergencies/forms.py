"""Forms of the emergency path: validation and normalisation only (the rules live in services)."""

from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator
from django.db.models import QuerySet

from approvals.emergencies.models import EmergencyException
from changes.incidents.models import Incident
from governance.models import Service
from governance.policy.engine import EmergencySettings


class IncidentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, incident: Incident) -> str:
        level = incident.priority or incident.get_urgency_display()
        return f"{incident.label} ({level}): {incident.title[:80]}"


class DeclareForm(forms.Form):
    """Declare an emergency: what is broken, why it cannot wait, and the controls in place."""

    service = forms.ModelChoiceField(queryset=Service.objects.none(), to_field_name="slug")
    title = forms.CharField(max_length=200, help_text="The emergency change's title.")
    justification = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why this cannot wait for the normal path. It goes into the signed record.",
    )
    incident = IncidentChoiceField(
        queryset=Incident.objects.none(),
        required=False,
        empty_label="No incident recorded (describe the outage below)",
        help_text="An open incident on the service or a service it depends on.",
    )
    outage = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Outage",
        help_text="When no incident is recorded: what is down, since when, for whom.",
    )
    controls = forms.MultipleChoiceField(
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Compensating controls",
    )
    control_notes = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Further controls",
        help_text="Anything else in place, in words.",
    )
    hours = forms.IntegerField(min_value=1, label="Exception length (hours)")

    def __init__(
        self,
        *args,
        services: QuerySet[Service],
        incidents: QuerySet[Incident],
        settings: EmergencySettings,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = services
        self.fields["incident"].queryset = incidents
        self.fields["controls"].choices = [(c.key, c.label) for c in settings.controls]
        self.fields["hours"].validators.append(MaxValueValidator(settings.exception_hours))
        self.fields["hours"].widget.attrs["max"] = settings.exception_hours
        self.fields["hours"].initial = settings.exception_hours
        self.fields[
            "hours"
        ].help_text = f"At most {settings.exception_hours} (the policy's limit); it ends by itself."


class EndForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the exception ends before its time.",
    )


class ReviewForm(forms.Form):
    """The CAB's secondary review of an emergency."""

    outcome = forms.ChoiceField(
        choices=[
            (EmergencyException.Review.JUSTIFIED, "Justified"),
            (EmergencyException.Review.NOT_JUSTIFIED, "Not justified"),
        ],
        widget=forms.RadioSelect,
    )
    notes = forms.CharField(
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when not justified: the actions to take.",
    )


class EmergencyFilterForm(forms.Form):
    STATE_CHOICES = [("", "In force or ended"), ("in_force", "In force"), ("ended", "Ended")]
    REVIEW_CHOICES = [
        ("", "Any review"),
        ("pending", "Awaiting CAB review"),
        ("justified", "Justified"),
        ("not_justified", "Not justified"),
    ]
    state = forms.ChoiceField(choices=STATE_CHOICES, required=False)
    review = forms.ChoiceField(choices=REVIEW_CHOICES, required=False)
    service = forms.SlugField(required=False, max_length=50)
    q = forms.CharField(required=False, max_length=100, label="Search")
