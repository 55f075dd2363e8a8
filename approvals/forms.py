"""Forms for approvers: validation and normalisation only."""

from django import forms
from django.db.models import Q

from approvals.models import Decision
from changes.models import ChangeRecord
from governance.models import Environment


class DecisionForm(forms.Form):
    verdict = forms.ChoiceField(choices=Decision.Verdict.choices)
    rationale = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Why? This goes into the signed record."}
        ),
        error_messages={"required": "A rationale is required for every decision."},
    )
    step_up_code = forms.CharField(
        max_length=10,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )

    def clean_rationale(self) -> str:
        value = self.cleaned_data["rationale"].strip()
        if not value:
            raise forms.ValidationError("A rationale is required for every decision.")
        return value


class QueueFilterForm(forms.Form):
    """Narrow my queue: search text, service, environment, change type, overdue only."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    service = forms.SlugField(required=False, max_length=50)
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(),
        required=False,
        to_field_name="slug",
        empty_label="Any environment",
    )
    change_type = forms.ChoiceField(
        choices=[("", "Any change type"), *ChangeRecord.Type.choices], required=False
    )
    overdue = forms.BooleanField(required=False, label="Overdue only")

    def filter(self, stages, now):
        """`stages` narrowed by the valid filters (an invalid form filters nothing)."""
        if not self.is_valid():
            return stages
        data = self.cleaned_data
        if data["q"]:
            stages = stages.filter(
                Q(request__release__service__slug__icontains=data["q"])
                | Q(request__release__version__icontains=data["q"])
                | Q(request__release__change__ref__icontains=data["q"])
            )
        if data["service"]:
            stages = stages.filter(request__release__service__slug=data["service"])
        if data["environment"]:
            stages = stages.filter(request__release__environment=data["environment"])
        if data["change_type"]:
            stages = stages.filter(request__release__change__type=data["change_type"])
        if data["overdue"]:
            stages = stages.filter(due_at__lt=now)
        return stages


class ReasonForm(forms.Form):
    """The reason behind an action that closes or takes something back (ledgered)."""

    reason = forms.CharField(max_length=2000)


class ReleaseFilterForm(forms.Form):
    STATUS_CHOICES = [
        ("", "Any status"),
        ("pending", "Pending"),
        ("approved", "Approved"),
        ("rejected", "Rejected"),
        ("expired", "Expired"),
        ("withdrawn", "Withdrawn"),
        ("deployed", "Deployed"),
        ("unapproved", "Deployed without approval"),
    ]
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    q = forms.CharField(required=False, max_length=100)
    monitoring = forms.BooleanField(required=False, label="Under enhanced monitoring")
