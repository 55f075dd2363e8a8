"""Forms of the quarterly review and workflow feedback: they validate and normalise only; the
services decide who may do what."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone

from reporting.reviews.models import QuarterlyReviewItem, WorkflowFeedback

DEFAULT_PERIOD = timedelta(days=90)
LONGEST_PERIOD = timedelta(days=3 * 366)
Outcome = QuarterlyReviewItem.Outcome


class OutcomeForm(forms.Form):
    """One item's outcome; the note becomes the ledger entry's reason."""

    outcome = forms.ChoiceField(choices=[c for c in Outcome.choices if c[0] != Outcome.PENDING])
    note = forms.CharField(max_length=1000, required=False, widget=forms.Textarea({"rows": 2}))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("outcome") in QuarterlyReviewItem.NOTE_REQUIRED and not data.get("note"):
            self.add_error("note", "Say what follows up, or which control changed.")
        return data


class CloseForm(forms.Form):
    note = forms.CharField(max_length=1000)


class FeedbackForm(forms.Form):
    rating = forms.ChoiceField(
        choices=WorkflowFeedback.Rating.choices,
        widget=forms.RadioSelect({"class": "form-check-input"}),
    )
    comment = forms.CharField(max_length=1000, required=False, widget=forms.Textarea({"rows": 2}))


class PeriodForm(forms.Form):
    """The releases requested from `start` to `end` (both included); the last 90 days by default."""

    start = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for form_field in self.fields.values():
            form_field.widget.attrs["class"] = "form-control form-control-sm"

    @classmethod
    def with_defaults(cls, query) -> PeriodForm:
        """Bound to `query` with the default period filled in, so the form shows what it uses."""
        data = query.dict()
        data.setdefault("end", timezone.localdate().isoformat())
        if not data.get("start"):
            try:
                end = forms.DateField().to_python(data["end"]) or timezone.localdate()
            except forms.ValidationError:
                end = timezone.localdate()  # the form reports the unreadable end itself
            data["start"] = (end - DEFAULT_PERIOD).isoformat()
        return cls(data)

    def clean(self) -> dict:
        data = super().clean()
        data["end"] = data.get("end") or timezone.localdate()
        data["start"] = data.get("start") or data["end"] - DEFAULT_PERIOD
        if data["start"] > data["end"]:
            self.add_error("start", "The period must start on or before its end.")
        elif data["end"] - data["start"] > LONGEST_PERIOD:
            self.add_error("start", "Choose a period of at most three years.")
        return data
