"""Fixtures shared with the approvals side of the CAB."""

from tests.approvals.cab.conftest import second_cab_member  # noqa: F401
