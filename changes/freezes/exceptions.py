"""Errors of the freeze calendar; each message is shown to people as-is."""

from governance.exceptions import GovernanceError, PermissionDenied


class InvalidFreeze(GovernanceError):
    """A freeze or override that cannot be saved as given (bad time, zone, rule, scope)."""

    code = "invalid_freeze"


class FreezeForbidden(PermissionDenied):
    """Only administrators manage freezes; the second administrator is never the first."""

    code = "freeze_forbidden"


class FreezeConflict(GovernanceError):
    """The freeze or override is no longer in a state that allows this (ended, confirmed)."""

    code = "freeze_conflict"
    status = 409
