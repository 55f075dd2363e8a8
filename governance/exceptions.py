"""Domain errors raised by governance services; each message is shown to people as-is."""


class GovernanceError(Exception):
    """Base class: `code` is the stable machine code the API returns."""

    code = "governance_error"
    status = 400

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class PermissionDenied(GovernanceError):
    code = "permission_denied"
    status = 403


class InvalidDelegation(GovernanceError):
    code = "invalid_delegation"


class InvalidPolicy(GovernanceError):
    code = "invalid_policy"


class IdentityConflict(GovernanceError):
    """A provisioned identity clashes with an existing one (userName is case-insensitive)."""

    code = "identity_conflict"
    status = 409
