"""One query that tells whether anything an action could write has changed: a digest of every
row of the tables the invariants talk about (columns that change on a mere read left out)."""

from __future__ import annotations

from django.db import connection

from approvals.admission.models import Admission
from approvals.emergencies.models import EmergencyException
from approvals.models import (
    ApprovalRequest,
    ApprovalStage,
    Decision,
    Deployment,
    Evidence,
    Release,
)
from approvals.pipelines.models import PipelineWait
from changes.cab.models import AgendaItem, CabMeeting
from changes.models import ChangeRecord, Freeze, FreezeOverride, Incident
from changes.reviews.models import Review, ReviewAction
from governance.models import (
    ApiToken,
    Delegation,
    GroupRoleMapping,
    IdentityGroup,
    LedgerEntry,
    Policy,
    PolicyProposal,
    PolicyVersion,
    RoleAssignment,
    Service,
    Team,
    User,
)
from reporting.anomalies.models import AnomalyAlert
from reporting.models import ReportExport
from reporting.reviews.models import QuarterlyReview, QuarterlyReviewItem, WorkflowFeedback

# Whole rows, except where a read alone writes (a token's or a person's last use).
ROWS = (
    Release,
    ApprovalRequest,
    ApprovalStage,
    Decision,
    Evidence,
    Deployment,
    ChangeRecord,
    Freeze,
    FreezeOverride,
    Incident,
    RoleAssignment,
    Delegation,
    GroupRoleMapping,
    IdentityGroup,
    LedgerEntry,
    Policy,
    PolicyProposal,
    PolicyVersion,
    Service,
    Team,
    AnomalyAlert,
    QuarterlyReview,
    QuarterlyReviewItem,
    WorkflowFeedback,
    Admission,
    EmergencyException,
    CabMeeting,
    AgendaItem,
    Review,
    ReviewAction,
    ReportExport,
    PipelineWait,
)
COLUMNS = {User: ("id", "username", "is_active"), ApiToken: ("id", "user_id", "revoked_at")}
LINKS = (
    ApprovalStage.eligible_approvers.through,
    ChangeRecord.services.through,
    Freeze.environments.through,
    Freeze.services.through,
    Freeze.teams.through,
    Incident.services.through,
    Service.depends_on.through,
    Service.owners.through,
    Service.co_owning_teams.through,
    Team.members.through,
    IdentityGroup.members.through,
    User.user_permissions.through,
    CabMeeting.members.through,
    CabMeeting.attendees.through,
    CabMeeting.services.through,
)


def _sql() -> tuple[list[str], str]:
    names, parts = [], []
    for model in (*ROWS, *LINKS):
        table = model._meta.db_table
        names.append(table)
        parts.append(
            f"(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM {table} t)"
        )
    for model, columns in COLUMNS.items():
        table = model._meta.db_table
        names.append(table)
        row = ", ".join(f"t.{c}" for c in columns)
        parts.append(
            f"(SELECT md5(coalesce(string_agg(concat_ws('|', {row}), ',' ORDER BY t.id), ''))"
            f" FROM {table} t)"
        )
    return names, "SELECT " + ", ".join(parts)


def take() -> dict[str, str]:
    names, sql = _sql()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return dict(zip(names, cursor.fetchone(), strict=True))


def changed(before: dict[str, str]) -> list[str]:
    """The tables whose rows differ from `before`."""
    after = take()
    return [table for table, digest in before.items() if after[table] != digest]
