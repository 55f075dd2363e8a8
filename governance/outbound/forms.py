"""Forms for subscriptions and redelivery: they validate and normalise only."""

from __future__ import annotations

from django import forms

from governance.notifications.events import SUBSCRIBABLE
from governance.notifications.models import Subscription
from governance.people.models import Team


class SubscriptionForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none())
    name = forms.CharField(max_length=100, help_text="e.g. #payments-releases")
    channel = forms.ChoiceField(choices=Subscription.Channel.choices)
    url = forms.URLField(
        max_length=500,
        label="URL",
        assume_scheme="https",
        help_text="The webhook URL, or the Slack / Teams incoming webhook URL.",
    )
    events = forms.MultipleChoiceField(
        choices=list(SUBSCRIBABLE.items()), widget=forms.CheckboxSelectMultiple
    )
    secret = forms.CharField(
        max_length=100,
        required=False,
        help_text="Webhooks only: signs each body (X-Signoff-Signature: sha256=HMAC).",
    )

    def __init__(self, *args, teams=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.fields["team"].queryset = teams


class RedeliverForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)
