"""Forms shared by the governance concerns and the apps above them."""

from __future__ import annotations

from django import forms

from governance.exceptions import GovernanceError


def form_errors_from(form, exc: GovernanceError) -> None:
    """Show a refused service call on the form: the message on top, field hints in place."""
    form.add_error(None, exc.message)
    for field, errors in exc.fields.items():
        if field in form.fields:
            form.add_error(field, errors)


class ReasonForm(forms.Form):
    """A reason, required: for a withdrawal, a revocation, an unlock."""

    reason = forms.CharField(max_length=500)
