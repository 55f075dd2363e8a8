"""The administrators' ServiceNow page: a new token, and CI mappings, each with a reason."""

from __future__ import annotations

from django import forms

from governance.models import Service


class TokenForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Reason")


class MappingForm(forms.Form):
    external_id = forms.RegexField(
        r"^[A-Za-z0-9]{1,64}$",
        max_length=64,
        label="ServiceNow CI or business service sys_id",
        help_text="32 hexadecimal characters, as in the CI's URL (sys_id=...).",
    )
    service = forms.ModelChoiceField(
        Service.objects.all(), to_field_name="slug", label="Signoff service"
    )
    reason = forms.CharField(max_length=500, label="Reason")
