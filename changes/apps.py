from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "changes"
    verbose_name = "Change management"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from changes.cab.calendar import meeting_source
        from changes.calendar.conflicts import change_conflicts
        from changes.calendar.entries import register_source
        from changes.models import ChangeRecord, Freeze
        from changes.records.selectors import register_conflict_finder

        auditlog.register(ChangeRecord)
        # A change's page shows its conflicts; the calendar, above change records, finds them.
        register_conflict_finder("calendar", change_conflicts)
        auditlog.register(Freeze, m2m_fields={"environments", "services", "teams"})
        register_source("cab meetings", meeting_source)
