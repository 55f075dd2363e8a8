"""Errors of the ServiceNow integration; each message is shown as-is (API answer, command)."""

from governance.exceptions import GovernanceError


class InvalidRecord(GovernanceError):
    """A pushed or pulled record that cannot be applied as sent; nothing of it is written."""

    code = "invalid_record"


class RecordConflict(GovernanceError):
    """The record clashes with what Signoff holds (a change number owned by another sys_id)."""

    code = "record_conflict"
    status = 409


class InvalidConfiguration(GovernanceError):
    """An instance URL, user or password file the integration cannot use."""

    code = "invalid_configuration"


class PullFailed(GovernanceError):
    """The Table API did not answer as expected (network, status code, body)."""

    code = "pull_failed"
    status = 502
