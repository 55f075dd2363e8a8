"""Domain errors of the CAB's meetings; messages are shown to people as-is."""

from governance.exceptions import GovernanceError, PermissionDenied


class InvalidSchedule(GovernanceError):
    code = "invalid_schedule"


class NotAMember(PermissionDenied):
    code = "not_a_cab_member"


class MeetingNotOpen(GovernanceError):
    code = "meeting_not_open"
    status = 409


class QuorumNotMet(GovernanceError):
    code = "quorum_not_met"
    status = 409


class OutcomeNotAllowed(GovernanceError):
    code = "outcome_not_allowed"
