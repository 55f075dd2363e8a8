"""The catalogue's sections: what each lists, how it searches and filters, which form edits it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django import forms
from django.db.models import Model, Q, QuerySet

from governance.authority.models import Environment, Service, Target
from governance.catalogue.forms import (
    FRAMEWORKS,
    EnvironmentForm,
    PersonForm,
    ServiceForm,
    TargetForm,
    TeamForm,
    VendorForm,
)
from governance.catalogue.models import Vendor
from governance.people.models import Team, User


class Tags(tuple):
    """A cell listing tags, shown as badges."""

    badges = True


def tagged(tag: str) -> Q:
    """Services carrying `tag`. JSON containment has no SQLite version, so this matches the tag
    as a quoted string in the stored JSON text: tags hold no quotes, so no tag matches another."""
    return Q(compliance_tags__icontains=f'"{tag}"')


def compliance_tags_in_use() -> list[str]:
    """The known frameworks, then every other tag a service carries: the list's tag filter."""
    used = {
        str(tag)
        for tags in Service.objects.values_list("compliance_tags", flat=True)
        if isinstance(tags, list)
        for tag in tags
    }
    return [*FRAMEWORKS.values, *sorted(used - set(FRAMEWORKS.values))]


@dataclass(frozen=True)
class Section:
    """One catalogue page: what it lists, how it searches and filters, and its edit form."""

    title: str
    model: type[Model]
    form: type[forms.ModelForm]
    search: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    # A lookup the value is given to, or a function making the condition from the value.
    filters: dict[str, str | Callable[[object], Q]] = field(default_factory=dict)
    related: tuple[str, ...] = ()
    can_add: bool = True
    # What one entry is called in page titles ("Edit service payments-api"); the model's name
    # unless that reads badly (a User is a "person" here).
    singular: str = ""

    @property
    def entry_name(self) -> str:
        return self.singular or str(self.model._meta.verbose_name)

    def rows(self, filters: dict) -> QuerySet:
        """The entries matching `filters`: the cleaned data of a valid `CatalogueFilterForm`."""
        rows = self.model.objects.select_related(*self.related).all()
        text = filters.get("q")
        if text:
            query = Q()
            for name in self.search:
                query |= Q(**{f"{name}__icontains": text})
            rows = rows.filter(query)
        for name, lookup in self.filters.items():
            # False (inactive people) is a filter too; only an absent value means "any".
            if filters.get(name) in (None, ""):
                continue
            value = filters[name]
            rows = rows.filter(lookup(value) if callable(lookup) else Q(**{lookup: value}))
        return rows

    def cells(self, row: Model) -> list:
        """The row's values for the columns; lists (compliance tags) become `Tags`."""
        values = [getattr(row, attr) for attr, _ in self.columns]
        return [Tags(value) if isinstance(value, list) else value for value in values]


SECTIONS = {
    "services": Section(
        "Services",
        Service,
        ServiceForm,
        ("name", "slug", "description"),
        (
            ("name", "Service"),
            ("get_tier_display", "Tier"),
            ("business_function", "Business function"),
            ("team", "Primary team"),
            ("vendor", "Vendor"),
            ("compliance_tags", "Compliance"),
        ),
        filters={"team": "team__slug", "tier": "tier", "tag": tagged},
        related=("team", "vendor"),
    ),
    "teams": Section(
        "Teams", Team, TeamForm, ("name", "slug"), (("name", "Team"), ("slug", "Slug"))
    ),
    "people": Section(
        "People",
        User,
        PersonForm,
        ("username", "first_name", "last_name", "email"),
        (
            ("username", "Username"),
            ("display_name", "Name"),
            ("email", "E-mail"),
            ("time_zone", "Time zone"),
            ("is_active", "Active"),
        ),
        filters={"team": "teams__slug", "active": "is_active"},
        can_add=False,
        singular="person",
    ),
    "environments": Section(
        "Environments",
        Environment,
        EnvironmentForm,
        ("name", "slug"),
        (
            ("name", "Environment"),
            ("get_risk_display", "Risk"),
            ("regulated", "Regulated"),
            ("get_platform_display", "Platform"),
        ),
    ),
    "targets": Section(
        "Targets",
        Target,
        TargetForm,
        ("name", "slug", "details"),
        (
            ("name", "Target"),
            ("environment", "Environment"),
            ("get_platform_display", "Platform"),
            ("details", "Details"),
        ),
        related=("environment",),
    ),
    "vendors": Section(
        "Vendors",
        Vendor,
        VendorForm,
        ("name", "slug", "contact_name", "contact_email"),
        (
            ("name", "Vendor"),
            ("contact_name", "Contact"),
            ("contact_email", "E-mail"),
            ("notice_period_hours", "Notice (hours)"),
            ("approval_turnaround_hours", "Decide within (hours)"),
        ),
    ),
}
