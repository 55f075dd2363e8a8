"""The Integrations page's forms: GitHub, GitLab and repository mappings, each with a reason.

A blank secret, URL or token keeps the stored one; the services validate the rest.
"""

from __future__ import annotations

from django import forms

from approvals.pipelines.models import Provider
from governance.models import Service

SECRET_WIDGET = forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"})


def _kept_blank(value: str) -> str | None:
    value = (value or "").strip()
    return value or None


class GitHubForm(forms.Form):
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=SECRET_WIDGET,
        label="Webhook secret",
        help_text="The GitHub App's webhook secret; blank keeps the stored one (never shown).",
    )
    api_url = forms.CharField(
        required=False,
        max_length=300,
        label="API URL",
        help_text="https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.",
    )
    open_releases = forms.BooleanField(
        required=False,
        label="Open a release for a run of a commit whose artifact Signoff already knows",
    )
    reason = forms.CharField(max_length=500, label="Reason")

    def clean_secret(self) -> str | None:
        return _kept_blank(self.cleaned_data["secret"])

    def clean_api_url(self) -> str | None:
        return _kept_blank(self.cleaned_data["api_url"])


class GitLabForm(GitHubForm):
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=SECRET_WIDGET,
        label="Webhook secret token",
        help_text="GitLab sends it as X-Gitlab-Token; only its SHA-256 is kept.",
    )
    api_url = forms.CharField(
        required=False,
        max_length=300,
        label="GitLab URL",
        help_text="e.g. https://gitlab.example.com; decisions go to its /api/v4.",
    )
    api_token = forms.CharField(
        required=False,
        max_length=300,
        widget=SECRET_WIDGET,
        label="API token",
        help_text="A token of a user who may approve deployments (scope api); blank keeps it.",
    )

    field_order = ["secret", "api_url", "api_token", "open_releases", "reason"]

    def clean_api_token(self) -> str | None:
        return _kept_blank(self.cleaned_data["api_token"])


class MappingForm(forms.Form):
    provider = forms.ChoiceField(
        choices=[(Provider.GITHUB, "GitHub"), (Provider.GITLAB, "GitLab")], label="Provider"
    )
    repository = forms.CharField(
        max_length=255,
        label="Repository",
        help_text="owner/repo (GitLab: group/subgroup/project), as the provider names it.",
    )
    service = forms.ModelChoiceField(
        Service.objects.order_by("slug"), to_field_name="slug", label="Signoff service"
    )
    reason = forms.CharField(max_length=500, label="Reason")
