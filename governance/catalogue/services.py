"""The administrators' catalogue: people, teams, services, environments and vendors, in pages.

Every save goes through `save_entry`, which writes the change and a ledger entry naming the
fields that changed (ownership decides who may approve, so it belongs in the evidence too);
django-auditlog keeps the field-level history as well.
"""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.db.models import Model

from governance.authority.models import Service
from governance.authority.services import is_administrator, sync_team_grants
from governance.exceptions import PermissionDenied
from governance.identity.tokens import revoke_user_tokens
from governance.ledger import services as ledger
from governance.people.models import Team, User


def save_entry(*, form: forms.ModelForm, actor: User, section: str) -> Model:
    """Save a validated catalogue form and record what changed, in one transaction."""
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators edit the catalogue.")
    _refuse_self_empowerment(form, actor)
    creating = form.instance.pk is None
    previous_team = form.initial.get("team")
    with transaction.atomic():
        entry = form.save()
        if isinstance(entry, Service) and (creating or "team" in form.changed_data):
            # Team-wide grants follow a service to its new team, and leave the old one.
            for team in Team.objects.filter(pk__in=[entry.team_id, previous_team]):
                sync_team_grants(team)
        if isinstance(entry, User) and "is_active" in form.changed_data and not entry.is_active:
            # Switched off here as by SCIM: the person's tokens die for good.
            revoke_user_tokens(
                user=entry, source=actor.username, reason="Deactivated in the catalogue"
            )
        ledger.append(
            kind=f"catalogue.{'created' if creating else 'updated'}",
            subject=f"{entry._meta.model_name}:{entry.pk}",
            actor=actor.username,
            payload={"section": section, "entry": str(entry), "fields": sorted(form.changed_data)},
        )
    return entry


def _refuse_self_empowerment(form: forms.ModelForm, actor: User) -> None:
    """Nobody becomes able to decide through an administrative act of their own.

    Service owners approve where the policy says so, and team membership decides who counts for
    a team: an administrator never adds themselves to either; another administrator must.
    """
    for name, label in (("owners", "an owner of this service"), ("members", "a team member")):
        if name not in form.cleaned_data:
            continue
        before = set(form.initial.get(name) or [])
        before = {getattr(person, "pk", person) for person in before}
        if actor.pk in {p.pk for p in form.cleaned_data[name]} and actor.pk not in before:
            raise PermissionDenied(
                f"You cannot make yourself {label}: it would let you approve through your own "
                "administrative act. Ask another administrator.",
                fields={name: ["You cannot add yourself."]},
            )
