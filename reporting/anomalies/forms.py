"""Forms of the alerts page: validation and normalisation only."""

from __future__ import annotations

from django import forms

from reporting.anomalies.models import AnomalyAlert


class AlertFilterForm(forms.Form):
    """Which alerts to show: open ones by default, of any kind."""

    status = forms.ChoiceField(
        choices=[("open", "Open"), ("acknowledged", "Acknowledged"), ("all", "All")],
        required=False,
    )
    kind = forms.ChoiceField(choices=[("", "Any kind"), *AnomalyAlert.Kind.choices], required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for form_field in self.fields.values():
            form_field.widget.attrs["class"] = "form-select form-select-sm"

    def filter(self, alerts):
        """`alerts` narrowed to the chosen status and kind (call after is_valid())."""
        status = self.cleaned_data.get("status") or "open"
        if status != "all":
            alerts = alerts.filter(status=status)
        if self.cleaned_data.get("kind"):
            alerts = alerts.filter(kind=self.cleaned_data["kind"])
        return alerts


class AcknowledgeForm(forms.Form):
    """What was done about the alert, or why it needs nothing: required, it goes in the ledger."""

    note = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "class": "form-control form-control-sm"}),
    )
