"""The policy editor's forms: the draft, the simulation window, the proposal's comment."""

from __future__ import annotations

from django import forms
from django.urls import reverse_lazy

from approvals.policy_editor.simulation import DEFAULT_DAYS, MAX_DAYS

# A policy document is a few kilobytes; this bounds what a request can make the engine parse.
MAX_SOURCE_LENGTH = 200_000


class SourceForm(forms.Form):
    """A draft policy document, validated as it is typed."""

    source = forms.CharField(
        label="Policy (YAML)",
        max_length=MAX_SOURCE_LENGTH,
        strip=False,  # indentation is meaning in YAML
        widget=forms.Textarea(
            attrs={
                "rows": 28,
                "spellcheck": "false",
                "wrap": "off",  # YAML lines stay whole; indentation must stay visible
                "class": "form-control mono",
                # Validation as you type: the fragment under the editor follows each pause.
                "hx-post": reverse_lazy("policy_editor:policy_validate"),
                "hx-trigger": "keyup changed delay:500ms",
                "hx-target": "#policy-validation",  # a live region: read out as it changes
            }
        ),
        error_messages={"required": "The policy cannot be empty."},
    )

    def clean_source(self) -> str:
        # Browsers send CRLF from a textarea; the published documents use LF.
        return self.cleaned_data["source"].replace("\r\n", "\n")


class DraftForm(SourceForm):
    """A draft policy and how far back to simulate it."""

    days = forms.IntegerField(
        label="Simulate the releases of the last … days",
        min_value=1,
        max_value=MAX_DAYS,
        initial=DEFAULT_DAYS,
        widget=forms.NumberInput(attrs={"class": "form-control"}),
        error_messages={
            "min_value": "Simulate at least 1 day.",
            "max_value": f"Simulate at most {MAX_DAYS} days.",
        },
    )


class ProposeForm(DraftForm):
    """The draft with the comment that goes into the version's history and the ledger."""

    comment = forms.CharField(
        label="Why this change",
        max_length=2000,
        widget=forms.TextInput(
            attrs={
                "class": "form-control",
                "placeholder": "The reason, for the second administrator",
            }
        ),
        error_messages={"required": "Say why the policy changes."},
    )

    def __init__(self, *args, comment_required: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Simulating needs no comment; the same form keeps what was typed for the proposal.
        self.fields["comment"].required = comment_required

    def clean_comment(self) -> str:
        value = self.cleaned_data["comment"].strip()
        if not value and self.fields["comment"].required:
            raise forms.ValidationError("Say why the policy changes.")
        return value
