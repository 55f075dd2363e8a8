"""SCIM filter parsers for django-scim2 (`filter=userName eq "x"`, `displayName eq "y"`).

A module of its own on purpose: django-scim2 resolves these classes while importing its adapters,
so they must not live next to our adapters (governance/scim.py), or the import would be circular.
"""

from __future__ import annotations

import re

from django_scim.exceptions import BadRequestError
from django_scim.filters import GroupFilterQuery, UserFilterQuery
from scim2_filter_parser.lexer import SCIMLexer

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
    # In a value path (`emails[type eq "work"]`) the parser passes the bracketed filter where
    # a sub-attribute name would be: no column matches it, so it is left as it is.
    if isinstance(sub_attr, str):
        sub_attr = sub_attr.lower()
    return (attr.lower() if isinstance(attr, str) else attr, sub_attr or None, None)


def refuse_unstorable_filter(filter_query: str) -> None:
    """A filter comparing with text no column can hold (NUL) would fail in PostgreSQL: a 400."""
    problem = text_problem(filter_query)
    if problem:
        raise BadRequestError(f"The filter contains {problem.what}.", scim_type="invalidFilter")


def refuse_untyped_active(filter_query: str) -> None:
    """`active` is a boolean column: compared with anything but eq/ne true or false (`active co
    "t"`, `active eq "yes"`), PostgreSQL fails the whole query (a 500); refused as a 400 instead."""
    tokens = list(SCIMLexer().tokenize(filter_query))
    for index, token in enumerate(tokens[:-1]):
        if token.type != "ATTRNAME" or token.value.lower() != "active":
            continue
        operator = tokens[index + 1].type
        value = tokens[index + 2] if index + 2 < len(tokens) else None
        if operator == "PR" or (operator in ("EQ", "NE") and _boolean_literal(value)):
            continue
        raise BadRequestError(
            '"active" is compared with eq or ne and true or false.', scim_type="invalidFilter"
        )


def _boolean_literal(token) -> bool:
    if token is None:
        return False
    return token.type in ("TRUE", "FALSE") or (
        token.type == "COMP_VALUE" and str(token.value).lower() in ("true", "false")
    )


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
        refuse_untyped_active(filter_query)
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
