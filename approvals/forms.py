"""Forms for approvers: validation and normalisation only."""

from django import forms

from approvals.models import Decision


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


class WithdrawForm(forms.Form):
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
