"""Errors of change records; each message is shown to people as-is."""

from governance.exceptions import GovernanceError, PermissionDenied


class InvalidChange(GovernanceError):
    """A change that cannot be saved as given (window, zone, services, people, state)."""

    code = "invalid_change"


class ChangeForbidden(PermissionDenied):
    """Only release managers of every affected service (or administrators) write a change."""

    code = "change_forbidden"


class ChangeConflict(GovernanceError):
    """The change is no longer in a state that allows this (ended, mirrored from an ITSM tool)."""

    code = "change_conflict"
    status = 409
