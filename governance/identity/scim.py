"""SCIM 2.0 provider at /scim/v2/ for Okta and Microsoft Entra ID, on top of django-scim2.

django-scim2 supplies the views and URL routing; this module supplies what those call: bearer-token
authentication, the User and Group adapters and the error format. Adapters only translate SCIM
documents into model changes: every write goes through `governance.identity.services`, which keeps
roles, guardian permissions and the ledger in step. Requests are parsed as the providers really send
them (RFC 7644 §3.5.2 tolerantly): any case of `op`, path-less value objects, "True"/"False"
strings, filtered paths such as `members[value eq "id"]`; attributes Signoff does not keep are
ignored rather than refused, so one unmapped attribute never stops a provisioning cycle.
"""

from __future__ import annotations

import json
import re
import reprlib
from typing import Any
from zoneinfo import available_timezones

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.validators import validate_email
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django_scim import constants
from django_scim import exceptions as scim_exceptions
from django_scim.adapters import SCIMGroup, SCIMUser
from django_scim.models import SCIMServiceProviderConfig
from django_scim.settings import scim_settings

from governance.api.parsers import UnsafeJSON, load_json, text_problem
from governance.exceptions import GovernanceError, IdentityConflict
from governance.identity import services as identity
from governance.identity.models import IdentityGroup
from governance.people.models import User

KNOWN_TIME_ZONES = frozenset(available_timezones())

BadRequest = scim_exceptions.BadRequestError

# attr (with optional schema URN), optional [value filter], optional .subAttr (RFC 7644 §3.5.2).
_PATH = re.compile(
    r"^(?:(?P<uri>urn:[^\[\]]+):)?(?P<attr>[A-Za-z][\w$-]*)"
    r"(?:\[(?P<filter>[^\]]*)\])?(?:\.(?P<sub>[A-Za-z][\w$-]*))?$"
)
_EQ_FILTER = re.compile(r'^\s*(\w+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_CORE_SCHEMAS = {constants.SchemaURI.USER.lower(), constants.SchemaURI.GROUP.lower()}
_BOOLEANS = {"true": True, "false": False}


# --- Errors and authentication -----------------------------------------------------------------


def scim_error(status: int, detail: str, scim_type: str | None = None) -> HttpResponse:
    """An error in the SCIM error schema (RFC 7644 §3.12): `status` is a string there."""
    body: dict[str, Any] = {"schemas": [constants.SchemaURI.ERROR], "status": str(status)}
    if scim_type:
        body["scimType"] = scim_type
    body["detail"] = detail
    return HttpResponse(json.dumps(body), status=status, content_type=constants.SCIM_CONTENT_TYPE)


def _as_scim_error(response: HttpResponse) -> HttpResponse:
    # django-scim2 writes `status` as a number and answers some errors with an empty body.
    if response.status_code < 400:
        return response
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or response.reason_phrase
    return scim_error(response.status_code, detail, body.get("scimType"))


class ScimTokenAuthMiddleware:
    """Wraps every django-scim2 view (its AUTH_CHECK_MIDDLEWARE): a valid SCIM token, or 401.

    Sessions are never consulted, so a signed-in browser cannot reach /scim/ by accident.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        token = None
        if scheme.lower() == "bearer" and key.strip():
            token = identity.authenticate_scim_token(key.strip())
        if token is None:
            response = scim_error(401, "A valid SCIM bearer token is required.")
            response["WWW-Authenticate"] = scim_settings.WWW_AUTHENTICATE_HEADER
            return response
        request.scim_source = f"scim:{token.name}"
        refusal = refuse_unreadable_request(request, kwargs)
        if refusal is not None:
            return refusal
        return _as_scim_error(self.get_response(request, *args, **kwargs))


def _no_such_endpoint(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    return scim_error(404, f"No SCIM endpoint at {request.path}.")


# Every other path under /scim/v2/ (config/urls.py, after django-scim2's own): a SCIM 404 rather
# than Django's HTML page, behind the same token check, so without a token it is a 401 exactly
# like the paths that exist and nobody learns which ones do.
unknown_endpoint = csrf_exempt(ScimTokenAuthMiddleware(_no_such_endpoint))


def extra_filter_kwargs_getter(model):
    """Pipeline service accounts are local identities: the provider neither sees nor edits them."""

    def get_extra_filter_kwargs(request, *args, **kwargs) -> dict:
        return {"is_service_account": False} if model is User else {}

    return get_extra_filter_kwargs


class ServiceProviderConfig(SCIMServiceProviderConfig):
    """What this provider supports (RFC 7643 §5), as honestly as the providers read it."""

    def to_dict(self) -> dict:
        config = super().to_dict()
        config["filter"] = {"supported": True, "maxResults": 200}
        config["changePassword"] = {"supported": False}
        return config


# --- Refusing what the database cannot store ----------------------------------------------------

_WRITES = frozenset({"POST", "PUT", "PATCH"})

# Columns a SCIM document writes, with the attribute a provider knows them by. Their lengths come
# from the model, so the refusal and the column can never disagree.
_USER_COLUMNS = (
    ("username", "userName"),
    ("first_name", "name.givenName"),
    ("last_name", "name.familyName"),
    ("email", "emails.value"),
    ("scim_external_id", "externalId"),
    ("time_zone", "timezone"),
)
_GROUP_COLUMNS = (("name", "displayName"), ("scim_external_id", "externalId"))


def refuse_unreadable_request(request: HttpRequest, kwargs: dict) -> HttpResponse | None:
    """A SCIM error for a request no adapter should see, or None to let it through.

    django-scim2 parses bodies itself (`json.loads` in its views) and turns any exception into a
    500, so every write (POST, PUT, PATCH on Users and Groups, and .search) is checked here, in
    the wrapper all its views pass through: deep nesting, NUL or unpaired surrogates anywhere in
    the body, bytes that are not UTF-8, or a body that is not a JSON object.
    """
    resource_id = kwargs.get("uuid")
    if isinstance(resource_id, str) and text_problem(resource_id):
        return scim_error(404, "No resource has that id.")  # No id can hold such text.
    if request.method not in _WRITES:
        return None
    try:
        body = request.body
    except RequestDataTooBig:
        return scim_error(413, "The request body is too large.")
    if not body.strip():
        return None  # django-scim2 answers an empty body itself.
    try:
        document = load_json(body.decode(constants.ENCODING))
    except UnsafeJSON as exc:
        where = ".".join(exc.path)
        detail = f"{where}: {exc.message}" if where else exc.message
        syntax = exc.code == "nesting_too_deep"
        return scim_error(400, detail, "invalidSyntax" if syntax else "invalidValue")
    except ValueError as exc:
        return scim_error(400, f"Could not decode the JSON body: {exc}", "invalidSyntax")
    if not isinstance(document, dict):
        return scim_error(400, "The body must be a JSON object.", "invalidSyntax")
    return None


def validate_scim_user(user: User) -> None:
    """Refuse a user the database cannot store, naming the SCIM attribute (400 invalidValue).

    Runs on the user as POST, PUT or PATCH left it, before `identity.provision_user` writes
    anything: userName over 150 characters or an externalId over 254 is a clear 400, not
    PostgreSQL's "value too long" (a 500 from django-scim2).
    """
    _check_columns(user, _USER_COLUMNS)


def validate_scim_group(group: IdentityGroup) -> None:
    """Refuse a group the database cannot store, naming the SCIM attribute (400 invalidValue)."""
    _check_columns(group, _GROUP_COLUMNS)


def _check_columns(instance: Model, columns: tuple[tuple[str, str], ...]) -> None:
    for field_name, attribute in columns:
        value = getattr(instance, field_name)
        if not isinstance(value, str):
            continue
        # The body check has already refused these for HTTP; kept so no other caller can write them.
        problem = text_problem(value)
        if problem:
            raise BadRequest(f'"{attribute}" contains {problem.what}.', scim_type="invalidValue")
        max_length = instance._meta.get_field(field_name).max_length
        if max_length and len(value) > max_length:
            raise BadRequest(
                f'"{attribute}" is at most {max_length} characters.', scim_type="invalidValue"
            )


# --- Parsing PATCH operations ------------------------------------------------------------------


def _operations(operations: Any) -> list[tuple[str, str | None, Any]]:
    """(op, path, value) triples; a path-less object value becomes one triple per attribute."""
    if not isinstance(operations, list):
        raise BadRequest("Operations must be a list.", scim_type="invalidSyntax")
    triples = []
    for operation in operations:
        if not isinstance(operation, dict):
            raise BadRequest("Each operation must be an object.", scim_type="invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in constants.VALID_PATCH_OPS:
            raise BadRequest(
                f"Unknown PATCH op {operation.get('op')!r}.", scim_type="invalidSyntax"
            )
        path, value = operation.get("path"), operation.get("value")
        if path:
            triples.append((op, str(path), value))
        elif op == "remove":
            raise BadRequest("A remove operation needs a path.", scim_type="noTarget")
        elif isinstance(value, dict):
            triples += [(op, key, item) for key, item in _flatten(value)]
        else:
            raise BadRequest(
                "Without a path the value must be an object.", scim_type="invalidValue"
            )
    return triples


def _flatten(value: dict) -> list[tuple[str, Any]]:
    # {"name": {"givenName": "x"}} → ("name.givenName", "x"); extension objects stay whole.
    pairs = []
    for key, item in value.items():
        if isinstance(item, dict) and not key.lower().startswith("urn:"):
            pairs += [(f"{key}.{sub}", sub_item) for sub, sub_item in item.items()]
        else:
            pairs.append((key, item))
    return pairs


def _split_path(path: str) -> tuple[str, str | None, tuple[str, str] | None] | None:
    """(attribute, sub-attribute, (filter attribute, value)) lowercased; None for extensions."""
    match = _PATH.match(path.strip())
    if match is None:
        raise BadRequest(f"Invalid path {path!r}.", scim_type="invalidPath")
    uri = match["uri"]
    if uri and uri.lower() not in _CORE_SCHEMAS:
        return None  # An extension schema (enterprise user...): not kept by Signoff.
    value_filter = None
    if match["filter"] is not None:
        found = _EQ_FILTER.match(match["filter"])
        if found is None:
            raise BadRequest(f"Unsupported filter in {path!r}.", scim_type="invalidFilter")
        value_filter = (found[1].lower(), found[2])
    sub = match["sub"].lower() if match["sub"] else None
    return match["attr"].lower(), sub, value_filter


def _boolean(value: Any, name: str) -> bool:
    # Entra ID sends "True"/"False" strings in PATCH; Okta sends JSON booleans.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise BadRequest(f'"{name}" must be a boolean.', scim_type="invalidValue")


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise BadRequest(f'"{name}" must be a string.', scim_type="invalidValue")
    return str(value).strip()


def _source(request: HttpRequest) -> str:
    return getattr(request, "scim_source", "scim")


# --- Users -------------------------------------------------------------------------------------


class ScimUser(SCIMUser):
    """SCIM User ↔ `governance.User`: userName, name, emails (primary), externalId, active."""

    @property
    def groups(self) -> list[dict]:
        return [
            {"value": str(group.scim_id), "display": group.name}
            for group in self.obj.identity_groups.all()
        ]

    @property
    def display_name(self) -> str:
        return self.obj.get_full_name() or self.obj.username

    @property
    def emails(self) -> list[dict]:
        if not self.obj.email:
            return []
        return [{"value": self.obj.email, "primary": True, "type": "work"}]

    def to_dict(self) -> dict:
        document = super().to_dict()
        document["externalId"] = self.obj.scim_external_id or None
        document["timezone"] = self.obj.time_zone
        return {key: value for key, value in document.items() if value is not None}

    def validate_dict(self, d: dict) -> None:
        if not isinstance(d, dict):
            raise BadRequest("The body must be a SCIM User object.", scim_type="invalidSyntax")
        if not _text(d.get("userName"), "userName"):
            raise BadRequest('"userName" is required.', scim_type="invalidValue")

    def from_dict(self, d: dict) -> None:
        """POST and PUT: the document replaces every attribute Signoff keeps."""
        name = d.get("name") if isinstance(d.get("name"), dict) else {}
        self._set("username", None, d.get("userName"))
        self._set("name", "givenname", name.get("givenName"))
        self._set("name", "familyname", name.get("familyName"))
        self._set("externalid", None, d.get("externalId"))
        self._set("emails", None, d.get("emails") or [])
        if d.get("active") is not None:
            self._set("active", None, d["active"])
        if d.get("timezone"):
            self._set("timezone", None, d["timezone"])
        if d.get("password"):
            self.obj.set_password(str(d["password"]))  # Okta's password push; never echoed.
        elif self.obj.pk is None:
            self.obj.set_unusable_password()

    def save(self) -> None:
        validate_scim_user(self.obj)
        try:
            identity.provision_user(user=self.obj, source=_source(self.request))
        except IdentityConflict as exc:
            raise scim_exceptions.IntegrityError(exc.message, scim_type="uniqueness") from None

    def delete(self) -> None:
        # Approvals reference people forever: a DELETE switches the person off instead.
        identity.deactivate_user(
            user=self.obj,
            source=_source(self.request),
            reason="Deleted by the identity provider (SCIM DELETE)",
        )

    def handle_operations(self, operations: Any) -> None:
        for op, path, value in _operations(operations):
            parsed = _split_path(path)
            if parsed is None:
                continue
            attr, sub, value_filter = parsed
            if op == "remove":
                value = [] if attr == "emails" else None
                if attr in {"username", "active"}:
                    raise BadRequest(f'"{path}" cannot be removed.', scim_type="mutability")
            self._set(attr, sub, value, value_filter)
        self.save()

    def _set(self, attr: str, sub: str | None, value: Any, value_filter=None) -> None:
        user = self.obj
        if attr == "username":
            username = _text(value, "userName")
            if not username:
                raise BadRequest('"userName" is required.', scim_type="invalidValue")
            user.username = user.scim_username = username
        elif attr == "name" and sub in {"givenname", "familyname"}:
            field = "first_name" if sub == "givenname" else "last_name"
            setattr(user, field, _text(value, f"name.{sub}"))
        elif attr == "name" and sub is None and isinstance(value, dict):
            for key, item in value.items():
                self._set("name", key.lower(), item)
        elif attr == "externalid":
            user.scim_external_id = _text(value, "externalId") or None
        elif attr == "active":
            user.is_active = _boolean(value, "active")
        elif attr == "emails":
            user.email = self._email(value, value_filter)
        elif attr == "timezone":
            user.time_zone = self._time_zone(value)
        # Anything else (displayName, title, phoneNumbers, ...) is not kept by Signoff.

    def _email(self, value: Any, value_filter) -> str:
        if isinstance(value, str):
            # emails[type eq "work"].value: only the work or primary address is kept.
            if value_filter and value_filter[1].lower() not in {"work", "true"}:
                return self.obj.email
            email = value.strip()
        elif isinstance(value, list):
            entries = [entry for entry in value if isinstance(entry, dict) and entry.get("value")]
            entries.sort(key=lambda entry: not _primary(entry))
            email = str(entries[0]["value"]).strip() if entries else ""
        elif isinstance(value, dict):
            email = _text(value.get("value"), "emails.value")
        else:
            email = ""
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise BadRequest(f"Invalid email {email!r}.", scim_type="invalidValue") from None
        return email

    @staticmethod
    def _time_zone(value: Any) -> str:
        # Looked up in the IANA list, never opened as a file: ZoneInfo() on a long or odd name
        # fails with OSError (a 500) instead of saying the zone is unknown.
        if not isinstance(value, str) or value not in KNOWN_TIME_ZONES:
            shown = reprlib.repr(value)
            raise BadRequest(f"Unknown time zone {shown}.", scim_type="invalidValue")
        return value


def _primary(entry: dict) -> bool:
    primary = entry.get("primary")
    return primary is True or str(primary).lower() == "true"


# --- Groups ------------------------------------------------------------------------------------


class ScimGroup(SCIMGroup):
    """SCIM Group ↔ `IdentityGroup`; membership changes grant and revoke the mapped roles."""

    _members: list[User] | None = None

    @property
    def members(self) -> list[dict]:
        return [
            {"value": str(user.scim_id), "display": user.get_full_name() or user.username}
            for user in self.obj.members.all()
        ]

    def to_dict(self) -> dict:
        document = {
            "schemas": [constants.SchemaURI.GROUP],
            "id": self.id,
            "displayName": self.obj.name,
            "meta": {
                "resourceType": self.resource_type,
                "created": self.obj.created_at.isoformat(),
                "location": self.location,
            },
        }
        if self.obj.scim_external_id:
            document["externalId"] = self.obj.scim_external_id
        # Entra ID reads groups with ?excludedAttributes=members; big groups stay cheap then.
        excluded = self.request.GET.get("excludedAttributes", "").lower().split(",")
        if "members" not in {item.strip() for item in excluded}:
            document["members"] = self.members
        return document

    def validate_dict(self, d: dict) -> None:
        if not isinstance(d, dict) or not _text(d.get("displayName"), "displayName"):
            raise BadRequest('"displayName" is required.', scim_type="invalidValue")

    def from_dict(self, d: dict) -> None:
        """POST and PUT: name, externalId and, when given, the exact membership."""
        self.obj.name = _text(d.get("displayName"), "displayName")
        self.obj.scim_external_id = _text(d.get("externalId"), "externalId") or None
        if "members" in d:
            self._members = self._users(d.get("members") or [], strict=True)

    def save(self) -> None:
        validate_scim_group(self.obj)
        try:
            identity.provision_group(
                group=self.obj, members=self._members, source=_source(self.request)
            )
        except GovernanceError as exc:
            raise BadRequest(exc.message) from None

    def delete(self) -> None:
        identity.delete_group(group=self.obj, source=_source(self.request))

    def handle_operations(self, operations: Any) -> None:
        # Work on a set of member ids, then apply the net change at once: operations apply in
        # order (RFC 7644 §3.5.2), and a member removed and re-added keeps their roles.
        before = set(self.obj.members.values_list("pk", flat=True))
        wanted = set(before)
        for op, path, value in _operations(operations):
            parsed = _split_path(path)
            if parsed is None:
                continue
            attr, _sub, value_filter = parsed
            if attr == "members":
                wanted = self._members_after(op, value, value_filter, wanted)
            elif attr == "displayname" and op != "remove":
                self.obj.name = _text(value, "displayName") or self.obj.name
            elif attr == "externalid":
                self.obj.scim_external_id = None if op == "remove" else _text(value, "externalId")
        validate_scim_group(self.obj)
        source = _source(self.request)
        try:
            identity.provision_group(group=self.obj, members=None, source=source)
            identity.apply_group_membership(
                group=self.obj,
                add=list(User.objects.filter(pk__in=wanted - before)),
                remove=list(User.objects.filter(pk__in=before - wanted)),
                source=source,
            )
        except GovernanceError as exc:
            raise BadRequest(exc.message) from None

    def _members_after(self, op: str, value: Any, value_filter, wanted: set[int]) -> set[int]:
        if value_filter is not None:
            # members[value eq "id"]: Okta's way to remove one member.
            if value_filter[0] != "value":
                raise BadRequest("Members are selected by value.", scim_type="invalidFilter")
            users = self._users([{"value": value_filter[1]}], strict=False)
            return wanted - {user.pk for user in users} if op == "remove" else wanted
        if op == "remove" and not value:
            return set()  # "Remove all members" (RFC 7644 §3.5.2.2).
        users = {user.pk for user in self._users(value or [], strict=op != "remove")}
        if op == "add":
            return wanted | users
        if op == "remove":
            return wanted - users
        return users

    @staticmethod
    def _users(members: Any, *, strict: bool) -> list[User]:
        if not isinstance(members, list):
            members = [members]
        ids = set()
        for member in members:
            member_id = member.get("value") if isinstance(member, dict) else None
            if not isinstance(member_id, str | int) or not str(member_id).strip():
                raise BadRequest("Each member needs a value.", scim_type="invalidValue")
            ids.add(str(member_id).strip())
        users = list(User.objects.filter(scim_id__in=ids, is_service_account=False))
        missing = ids - {str(user.scim_id) for user in users}
        if strict and missing:
            raise BadRequest(
                f"Unknown member(s): {', '.join(sorted(missing))}.", scim_type="invalidValue"
            )
        return users
