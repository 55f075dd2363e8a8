"""Finding people by name: exact, case-insensitive and safe against look-alike characters."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from governance.people.models import User
from governance.people.names import normalise, skeletons


def people_named(name: str, *, emails: bool = True) -> QuerySet[User]:
    """Everyone a free-text name could denote: the same username (case, width and invisible
    characters aside), the same e-mail address, or a look-alike (a TR39 skeleton in common).

    Conservative on purpose: it decides conflicts of interest, where a false match costs one
    more approver and a missed one lets someone approve their own release.
    """
    if not normalise(name):
        return User.objects.none()
    keys = set(skeletons(name))
    query = Q(name_skeleton__in=keys) | Q(name_skeleton_cased__in=keys)
    if emails and "@" in name:
        query |= Q(email__iexact=normalise(name))
    return User.objects.filter(query)


def person_named(name: str) -> User | None:
    """The one person a free-text name denotes: an exact username (normalised) first, then
    anyone else it could denote, active people first."""
    people = list(people_named(name).order_by("-is_active", "username")[:20])
    wanted = normalise(name)
    exact = next((p for p in people if normalise(p.username) == wanted), None)
    return exact or (people[0] if people else None)
