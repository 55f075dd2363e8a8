"""Domain errors of change management; messages are shown to people as-is."""

from governance.exceptions import GovernanceError


class InvalidIncident(GovernanceError):
    code = "invalid"
