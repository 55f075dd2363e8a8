"""Errors of the emergency path; each message is shown to people as-is."""

from governance.exceptions import GovernanceError, PermissionDenied


class InvalidEmergency(GovernanceError):
    """An emergency, its end or its review that cannot be recorded as given."""

    code = "invalid_emergency"


class EmergencyForbidden(PermissionDenied):
    """The person may not declare, end or review this emergency."""

    code = "emergency_forbidden"


class EmergencyConflict(GovernanceError):
    """The emergency is no longer in a state that allows this (ended, already reviewed)."""

    code = "emergency_conflict"
    status = 409
