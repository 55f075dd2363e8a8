"""Identity forms: step-up codes and SCIM tokens."""

from __future__ import annotations

from django import forms

from governance.identity.models import ScimToken


class StepUpCodeForm(forms.Form):
    code = forms.RegexField(
        r"^\d{6,8}$",
        label="Code from your app",
        error_messages={"invalid": "Enter the 6-digit code your app shows."},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class ScimTokenForm(forms.Form):
    """Issue a SCIM token: its name says which identity provider holds it."""

    name = forms.CharField(
        max_length=100,
        error_messages={"required": "Give the token a name, e.g. the identity provider's."},
    )


class ScimTokenRevokeForm(forms.Form):
    """Revoke a SCIM token that still works; anything else is a form error, not a 404 or 500."""

    revoke = forms.ModelChoiceField(
        queryset=ScimToken.objects.active(),
        error_messages={
            "required": "No such token, or it is already revoked.",
            "invalid_choice": "No such token, or it is already revoked.",
        },
    )
