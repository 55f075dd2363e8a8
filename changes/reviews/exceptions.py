"""Errors of post-implementation reviews and post-mortems; messages are shown to people as-is."""

from governance.exceptions import GovernanceError, PermissionDenied


class InvalidReview(GovernanceError):
    """A completion or an action that cannot be saved as given (missing text, past due date)."""

    code = "invalid_review"


class ReviewForbidden(PermissionDenied):
    """Only an owner of the review's service, who did not write the change, completes it."""

    code = "review_forbidden"


class ReviewConflict(GovernanceError):
    """The review or action is no longer in a state that allows this (already completed, done)."""

    code = "review_conflict"
    status = 409
