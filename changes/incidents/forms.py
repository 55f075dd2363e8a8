"""The administrators' PagerDuty page: signing secrets and service mappings, each with a reason."""

from __future__ import annotations

from django import forms

from governance.models import Service


class SecretsForm(forms.Form):
    secrets = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
        max_length=2000,
        label="Signing secrets",
        help_text="One a line; two while rotating. Replaces the stored ones (never shown).",
    )
    reason = forms.CharField(max_length=500, label="Reason")

    def clean_secrets(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["secrets"].splitlines() if line.strip()]


class MappingForm(forms.Form):
    external_id = forms.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$",
        max_length=100,
        label="PagerDuty service id",
        help_text="As in the service's PagerDuty URL, e.g. P1AB2CD.",
    )
    service = forms.ModelChoiceField(
        Service.objects.all(), to_field_name="slug", label="Signoff service"
    )
    reason = forms.CharField(max_length=500, label="Reason")
