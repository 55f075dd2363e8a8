"""Every governance model, importable from one place. Each concern owns its models
(`governance/<concern>/models.py`); Django finds them here, under the app label `governance`."""

from governance.authority.models import (
    ROLE_PERMISSIONS,
    SERVICE_ACTIONS,
    AccessReview,
    AccessReviewItem,
    Delegation,
    DelegationQuerySet,
    Environment,
    Platform,
    Role,
    RoleAssignment,
    Service,
    ServiceQuerySet,
    Target,
    delegated_service_ids,
    global_permission,
    holds_everywhere,
)
from governance.catalogue.models import Vendor
from governance.identity.models import (
    ApiToken,
    GroupRoleMapping,
    IdentityGroup,
    MappedRoleGrant,
    ScimToken,
)
from governance.ledger.models import LedgerEntry, LedgerHead, LedgerVerification
from governance.notifications.models import Delivery, Notification, OutboundEvent, Subscription
from governance.people.models import CalendarFeedKey, Team, User
from governance.policy.models import Policy, PolicyProposal, PolicyVersion

__all__ = [
    "ROLE_PERMISSIONS",
    "SERVICE_ACTIONS",
    "AccessReview",
    "AccessReviewItem",
    "ApiToken",
    "CalendarFeedKey",
    "Delegation",
    "DelegationQuerySet",
    "Delivery",
    "Environment",
    "GroupRoleMapping",
    "IdentityGroup",
    "LedgerEntry",
    "LedgerHead",
    "LedgerVerification",
    "MappedRoleGrant",
    "Notification",
    "OutboundEvent",
    "Platform",
    "Policy",
    "PolicyProposal",
    "PolicyVersion",
    "Role",
    "RoleAssignment",
    "ScimToken",
    "Service",
    "ServiceQuerySet",
    "Subscription",
    "Target",
    "Team",
    "User",
    "Vendor",
    "delegated_service_ids",
    "global_permission",
    "holds_everywhere",
]
