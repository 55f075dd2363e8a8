"""Domain errors of the approval flow; messages are shown to people as-is."""

from governance.exceptions import GovernanceError, PermissionDenied


class InvalidRequest(GovernanceError):
    code = "invalid"


class NotFound(GovernanceError):
    code = "not_found"
    status = 404


class SelfApprovalForbidden(PermissionDenied):
    code = "self_approval_forbidden"


class NotEligible(PermissionDenied):
    code = "not_eligible"


class InvalidTransition(GovernanceError):
    code = "invalid_transition"
    status = 409


class StepUpRequired(PermissionDenied):
    code = "step_up_required"
