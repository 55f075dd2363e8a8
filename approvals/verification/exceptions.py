"""Errors of post-deploy verification; messages are shown to people as-is."""

from governance.exceptions import GovernanceError


class VerificationClosed(GovernanceError):
    """A health report for a deployment whose window is not open (never opened, over, or
    already decided): nothing more can change its outcome."""

    code = "verification_closed"
    status = 409
