from django.contrib import admin

from changes.models import ChangeRecord, Freeze, FreezeOverride, Incident


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never changed here: the change and freeze pages write through
    their services, which check the rules and write the ledger."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChangeRecord)
class ChangeRecordAdmin(ReadOnlyAdmin):
    """Change records are evidence: their author never approves the releases they cover, their
    type decides the policy, and the incident a change fixes lets its emergency release past
    that incident. They are written on the change pages (/changes/) and by the ITSM
    integration, through changes.records.services (ledgered)."""

    list_display = ["ref", "title", "type", "state", "risk", "author", "created_at"]
    list_filter = ["type", "state", "source"]
    search_fields = ["ref", "title"]


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
