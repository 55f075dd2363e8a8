"""Catalogue forms: one edit form per section, compliance tags, and the list filter."""

from __future__ import annotations

import re

from django import forms
from django.core.validators import MaxValueValidator, URLValidator

from governance.authority.models import Environment, Service, Target
from governance.catalogue.models import Vendor
from governance.people.forms import TIME_ZONES
from governance.people.models import Team, User

# Policies compare tags as typed ("SOX" in service.compliance_tags): one spelling, upper-case.
COMPLIANCE_TAG = re.compile(r"[A-Z0-9][A-Z0-9-]{0,29}")
COMPLIANCE_TAG_HINT = "letters, digits and hyphens, at most 30 (e.g. PCI-DSS)"


def normalise_compliance_tags(text: str) -> list[str]:
    """Comma-separated tags, trimmed, upper-cased and de-duplicated in the order given."""
    typed = [part.strip() for part in text.split(",") if part.strip()]
    # ASCII first: upper() would turn "ß" into "SS" and make a tag nobody typed.
    bad = [t for t in typed if not (t.isascii() and COMPLIANCE_TAG.fullmatch(t.upper()))]
    if bad:
        raise forms.ValidationError(
            "Not a valid tag: %(tags)s. A tag holds %(hint)s; separate tags with commas.",
            code="invalid_tag",
            params={"tags": ", ".join(f"“{t}”" for t in bad), "hint": COMPLIANCE_TAG_HINT},
        )
    return list(dict.fromkeys(t.upper() for t in typed))


class ComplianceTagField(forms.CharField):
    """One compliance tag (a filter), normalised like the tags stored on services."""

    def clean(self, value) -> str:
        text = super().clean(value)
        if not text:
            return ""
        if "," in text:
            raise forms.ValidationError("Choose one tag.", code="invalid_tag")
        return normalise_compliance_tags(text)[0]


class ComplianceTagListField(forms.CharField):
    """Compliance tags typed as a comma-separated list; cleans to a list of tags."""

    def clean(self, value) -> list[str]:
        return normalise_compliance_tags(super().clean(value) or "")


class CatalogueFilterForm(forms.Form):
    """The catalogue list's search and filters, checked before any of them reaches a query.

    Raw query parameters used as lookups fail inside the database (`?tier=1'` is not a number,
    `?q=%00` is a NUL PostgreSQL refuses): validated here they become a form error instead.
    """

    q = forms.CharField(required=False, max_length=100, label="Search")
    team = forms.SlugField(required=False, max_length=50, label="Team")
    tier = forms.TypedChoiceField(
        choices=[("", "Any tier"), *Service.Tier.choices],
        coerce=int,
        empty_value=None,
        required=False,
        label="Tier",
    )
    active = forms.TypedChoiceField(
        choices=[("", "Active and inactive"), ("true", "Active"), ("false", "Inactive")],
        coerce=lambda value: value == "true",
        empty_value=None,
        required=False,
        label="Active",
    )
    tag = ComplianceTagField(required=False, max_length=30, label="Compliance tag")


HEALTH_URLS_MAX = 10


class HealthUrlListField(forms.CharField):
    """Health URLs typed one a line; cleans to a list of http(s) URLs, de-duplicated in order."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})
    url_validator = URLValidator(schemes=["http", "https"])

    def prepare_value(self, value) -> str:
        return "\n".join(value) if isinstance(value, list) else (value or "")

    def clean(self, value) -> list[str]:
        typed = [line.strip() for line in (super().clean(value) or "").splitlines()]
        urls = list(dict.fromkeys(line for line in typed if line))
        bad = [url for url in urls if not self._valid(url)]
        if bad:
            raise forms.ValidationError(
                "Not an http(s) URL: %(urls)s. Give one full URL a line, e.g. "
                "https://payments.internal/healthz.",
                code="invalid_url",
                params={"urls": ", ".join(f"“{url}”" for url in bad)},
            )
        if len(urls) > HEALTH_URLS_MAX:
            raise forms.ValidationError(
                "At most %(max)d health URLs.", code="too_many", params={"max": HEALTH_URLS_MAX}
            )
        return urls

    def has_changed(self, initial, data) -> bool:
        try:
            return self.clean(data) != list(initial or [])
        except forms.ValidationError:
            return True

    def _valid(self, url: str) -> bool:
        try:
            self.url_validator(url)
        except forms.ValidationError:
            return False
        return len(url) <= 500


FRAMEWORKS = Service.ComplianceFramework


class ServiceForm(forms.ModelForm):
    """A service; its compliance tags as checkboxes of the known frameworks plus other tags."""

    compliance_tags = forms.MultipleChoiceField(
        choices=FRAMEWORKS.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Compliance frameworks",
    )
    other_compliance_tags = ComplianceTagListField(
        required=False,
        max_length=300,
        label="Other compliance tags",
        help_text="Comma-separated, e.g. FEDRAMP, NIS2: saved upper-case, as policies see them.",
    )
    health_urls = HealthUrlListField(
        required=False,
        label="Health URLs",
        help_text="One a line. Polled after a deployment when the policy requires post-deploy "
        "verification; any answer but 2xx (redirects too) fails the deployment.",
    )

    class Meta:
        model = Service
        fields = [
            "name",
            "slug",
            "description",
            "tier",
            "business_function",
            "team",
            "co_owning_teams",
            "owners",
            "vendor",
            "compliance_tags",
            "depends_on",
            "health_urls",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "co_owning_teams": forms.CheckboxSelectMultiple,
            "owners": forms.SelectMultiple(attrs={"size": 8}),
            "depends_on": forms.SelectMultiple(attrs={"size": 8}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stored_tags = stored_tags(self.instance)
        known = [tag for tag in self.stored_tags if tag in FRAMEWORKS.values]
        self.initial["compliance_tags"] = known
        others = [tag for tag in self.stored_tags if tag not in known]
        self.initial["other_compliance_tags"] = ", ".join(others)

    def clean_depends_on(self) -> list[Service]:
        services = list(self.cleaned_data["depends_on"])
        if self.instance.pk and any(s.pk == self.instance.pk for s in services):
            raise forms.ValidationError("A service cannot depend on itself.", code="self")
        return services

    def clean(self) -> dict:
        data = super().clean()
        if "compliance_tags" in data and "other_compliance_tags" in data:
            data["compliance_tags"] = self._merged_tags(
                data["compliance_tags"], data["other_compliance_tags"]
            )
        return data

    def _merged_tags(self, checked: list[str], typed: list[str]) -> list[str]:
        # Known frameworks in their usual order (also when typed), then the others as typed.
        known = [tag for tag in FRAMEWORKS.values if tag in {*checked, *typed}]
        tags = known + [tag for tag in typed if tag not in known]
        # The same tags in another order are no change: the stored list stays as it is.
        return self.stored_tags if sorted(tags) == sorted(self.stored_tags) else tags

    @property
    def changed_data(self) -> list[str]:
        """The two tag inputs count as one field, changed only if the tags are."""
        changed = [name for name in super().changed_data if "compliance_tags" not in name]
        tags = getattr(self, "cleaned_data", {}).get("compliance_tags", self.stored_tags)
        return changed + (["compliance_tags"] if tags != self.stored_tags else [])


def stored_tags(service: Service) -> list[str]:
    """A service's compliance tags as stored (the old JSON input may have left a bare string)."""
    tags = service.compliance_tags
    if isinstance(tags, str):
        return [tags]
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug", "members"]
        widgets = {"members": forms.SelectMultiple(attrs={"size": 12})}


class PersonForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=[(tz, tz) for tz in TIME_ZONES])

    class Meta:
        model = User
        fields = [
            "first_name",
            "last_name",
            "email",
            "time_zone",
            "working_hours_start",
            "working_hours_end",
            "is_active",
        ]


class EnvironmentForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = ["name", "slug", "risk", "regulated", "order", "platform"]


class TargetForm(forms.ModelForm):
    """A place an environment's releases land on: policies see its platform."""

    class Meta:
        model = Target
        fields = ["environment", "name", "slug", "platform", "details"]


HOURS_IN_A_YEAR = 365 * 24


class VendorForm(forms.ModelForm):
    support_url = forms.URLField(required=False, assume_scheme="https", label="Support URL")

    class Meta:
        model = Vendor
        fields = [
            "name",
            "slug",
            "contact_name",
            "contact_email",
            "support_url",
            "notice_period_hours",
            "approval_turnaround_hours",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A year at most, on every database: SQLite would otherwise store any size and
        # PostgreSQL refuse past 2**31 - 1 only by its own integer range.
        for name in ("notice_period_hours", "approval_turnaround_hours"):
            self.fields[name].validators.append(MaxValueValidator(HOURS_IN_A_YEAR))
            self.fields[name].widget.attrs["max"] = HOURS_IN_A_YEAR
