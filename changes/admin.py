from django.contrib import admin

from changes.models import ChangeRecord


@admin.register(ChangeRecord)
class ChangeRecordAdmin(admin.ModelAdmin):
    """Change records are evidence: their author never approves the releases they cover, their
    type decides the policy. So only the title and the ITSM link are edited here, and nothing
    is deleted; state changes go through changes.records.services (ledgered)."""

    list_display = ["ref", "title", "type", "state", "author", "created_at"]
    list_filter = ["type", "state"]
    search_fields = ["ref", "title"]
    readonly_fields = ["ref", "type", "state", "author", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # pipelines and people open change records through the approval request

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
