"""Read-only admin views of the approval record: it changes only through services."""

from django.contrib import admin

from approvals.models import ApprovalRequest, Decision, Release
from governance.admin import ReadOnlyAdmin


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ["pk", "service", "version", "environment", "requested_by", "created_at"]
    list_filter = ["environment", "service"]
    search_fields = ["version", "digest", "change__ref"]
    list_select_related = ["service", "environment", "requested_by"]


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ["pk", "release", "status", "requested_at", "decided_at"]
    list_filter = ["status"]
    list_select_related = ["release__service", "release__environment"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["pk", "request", "stage", "approver", "verdict", "created_at"]
    list_filter = ["verdict"]
    list_select_related = [
        "approver",
        "stage",
        "request__release__service",
        "request__release__environment",
    ]
