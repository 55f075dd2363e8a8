"""SCIM filter parsers for django-scim2 (`filter=userName eq "x"`, `displayName eq "y"`).

A module of its own on purpose: django-scim2 resolves these classes while importing its adapters,
so they must not live next to our adapters (governance/scim.py), or the import would be circular.
"""

from __future__ import annotations

import re

from django_scim.exceptions import BadRequestError
from django_scim.filters import GroupFilterQuery, UserFilterQuery

from governance.api.parsers import text_problem

# Quoted strings in a filter, so rewriting attribute names never touches a compared value.
_QUOTED = re.compile(r'("(?:[^"\\]|\\.)*")')
_USERNAME = re.compile(r"\busername\b", re.IGNORECASE)


class AttributeMap(dict):
    """Attribute paths → columns, matched without regard to case (RFC 7643 §2.1)."""

    def __init__(self, columns: dict[tuple, str]) -> None:
        super().__init__({_normalise(key): column for key, column in columns.items()})

    def get(self, key, default=None):
        return super().get(_normalise(key), default)

    def __contains__(self, key) -> bool:
        return super().__contains__(_normalise(key))


def _normalise(key: tuple) -> tuple:
    attr, sub_attr, _uri = key
    return (attr.lower(), sub_attr.lower() if sub_attr else None, None)


def refuse_unstorable_filter(filter_query: str) -> None:
    """A filter comparing with text no column can hold (NUL) would fail in PostgreSQL: a 400."""
    problem = text_problem(filter_query)
    if problem:
        raise BadRequestError(f"The filter contains {problem.what}.", scim_type="invalidFilter")


class UserFilter(UserFilterQuery):
    attr_map = AttributeMap(
        {
            ("userName", None, None): "username",
            ("name", "familyName", None): "last_name",
            ("name", "givenName", None): "first_name",
            ("externalId", None, None): "scim_external_id",
            ("emails", "value", None): "email",
            ("active", None, None): "is_active",
        }
    )

    @classmethod
    def search(cls, filter_query: str, request=None):
        # The parser compares userName case-insensitively only when spelt exactly "userName";
        # providers are free to spell attribute names in any case.
        refuse_unstorable_filter(filter_query)
        parts = _QUOTED.split(filter_query)
        parts[::2] = [_USERNAME.sub("userName", part) for part in parts[::2]]
        return super().search("".join(parts), request)


class GroupFilter(GroupFilterQuery):
    attr_map = AttributeMap(
        {
            ("displayName", None, None): "name",
            ("externalId", None, None): "scim_external_id",
        }
    )

    @classmethod
    def search(cls, filter_query: str, request=None):
        refuse_unstorable_filter(filter_query)
        return super().search(filter_query, request)
