from django.contrib import admin

from changes.models import ChangeRecord


@admin.register(ChangeRecord)
class ChangeRecordAdmin(admin.ModelAdmin):
    list_display = ["ref", "title", "type", "state", "author", "created_at"]
    list_filter = ["type", "state"]
    search_fields = ["ref", "title"]
    readonly_fields = ["state"]  # State changes go through changes.services (ledgered).
