"""The administrators' cluster form: validation and normalisation only (rules live in services)."""

from __future__ import annotations

import re

from django import forms

from governance.models import Environment


class ClusterForm(forms.Form):
    """Register a Kubernetes cluster, or update one registered under the same name."""

    name = forms.CharField(
        max_length=100,
        help_text="Its slug names the webhook URL: /integrations/kubernetes/SLUG/admission.",
    )
    environment = forms.ModelChoiceField(
        Environment.objects.all(),
        to_field_name="slug",
        help_text="Images must be approved for this environment to run there.",
    )
    namespaces = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Governed namespaces",
        help_text="One per line, or separated by commas. Other namespaces are not checked.",
    )
    rotate_token = forms.BooleanField(
        required=False,
        label="Issue a new token",
        help_text="For an existing cluster: the current token stops working at once.",
    )
    reason = forms.CharField(max_length=500, label="Reason")

    def clean_namespaces(self) -> list[str]:
        return [part for part in re.split(r"[\s,]+", self.cleaned_data["namespaces"]) if part]
