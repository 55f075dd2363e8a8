"""Review forms: they read text, people and dates; the services decide who may and what is
complete."""

from __future__ import annotations

from django import forms

from changes.reviews.models import Review
from governance.models import User

JUSTIFICATION_CHOICES = [
    ("", "Choose…"),
    ("yes", "Justified: the emergency path was the right call"),
    ("no", "Not justified: the normal path should have been followed"),
]


class CompleteReviewForm(forms.Form):
    """Complete a review; a post-mortem also judges the emergency's justification."""

    what_happened = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000)
    root_cause = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)
    justification_valid = forms.TypedChoiceField(
        label="Was the emergency justified?",
        choices=JUSTIFICATION_CHOICES,
        coerce=lambda value: value == "yes",
        empty_value=None,
    )
    reason = forms.CharField(
        required=False,
        max_length=500,
        help_text="Optional note for the audit record.",
    )

    def __init__(self, *args, review: Review, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if review.kind != Review.Kind.POST_MORTEM:
            del self.fields["justification_valid"]


class ActionForm(forms.Form):
    """A follow-up action agreed in the review: what, who and by when."""

    description = forms.CharField(max_length=300)
    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True, is_service_account=False).order_by("username"),
        to_field_name="username",
    )
    due_on = forms.DateField(label="Due on", widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(required=False, max_length=500)
