"""Who and what is governed. One module per concern; everything is importable from here."""

from governance.models.authority import (
    ROLE_PERMISSIONS,
    SERVICE_ACTIONS,
    Delegation,
    DelegationQuerySet,
    Environment,
    Role,
    RoleAssignment,
    Service,
    ServiceQuerySet,
    delegated_service_ids,
    global_permission,
    holds_everywhere,
)
from governance.models.identity import GroupRoleMapping, IdentityGroup, MappedRoleGrant, ScimToken
from governance.models.ledger import LedgerEntry, LedgerHead
from governance.models.notifications import Notification
from governance.models.people import Team, User
from governance.models.policies import Policy, PolicyProposal, PolicyVersion
from governance.models.reviews import AccessReview, AccessReviewItem
from governance.models.tokens import ApiToken
from governance.models.vendors import Vendor

__all__ = [
    "ROLE_PERMISSIONS",
    "SERVICE_ACTIONS",
    "AccessReview",
    "AccessReviewItem",
    "ApiToken",
    "Delegation",
    "DelegationQuerySet",
    "Environment",
    "GroupRoleMapping",
    "IdentityGroup",
    "LedgerEntry",
    "LedgerHead",
    "MappedRoleGrant",
    "Notification",
    "Policy",
    "PolicyProposal",
    "PolicyVersion",
    "Role",
    "RoleAssignment",
    "ScimToken",
    "Service",
    "ServiceQuerySet",
    "Team",
    "User",
    "Vendor",
    "delegated_service_ids",
    "global_permission",
    "holds_everywhere",
]
