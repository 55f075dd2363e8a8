from django.contrib import admin

from changes.models import ChangeRecord, Freeze, FreezeOverride, Incident


@admin.register(ChangeRecord)
class ChangeRecordAdmin(admin.ModelAdmin):
    """Change records are evidence: their author never approves the releases they cover, their
    type decides the policy. So only the title and the ITSM link are edited here, and nothing
    is deleted; state changes go through changes.records.services (ledgered)."""

    list_display = ["ref", "title", "type", "state", "author", "created_at"]
    list_filter = ["type", "state"]
    search_fields = ["ref", "title"]
    # The incident a change fixes lets its emergency release past that incident: set only when
    # the change is opened through the release request (ledgered), never edited here.
    readonly_fields = ["ref", "type", "state", "author", "incident", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # pipelines and people open change records through the approval request

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never changed here: the freeze pages (/changes/freezes/) write through
    changes.freezes.services, which checks the rules and writes the ledger."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Freeze)
class FreezeAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "time_zone", "starts_at", "recurrence", "ended_at"]
    list_filter = ["kind"]
    search_fields = ["name"]


@admin.register(FreezeOverride)
class FreezeOverrideAdmin(ReadOnlyAdmin):
    list_display = ["freeze", "release_label", "requested_by", "confirmed_by", "expires_at"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents, read-only: they change only as their source reports them (ledgered)."""

    list_display = ["external_id", "source", "title", "priority", "urgency", "status", "opened_at"]
    list_filter = ["source", "status", "urgency", "priority"]
    search_fields = ["external_id", "title"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
