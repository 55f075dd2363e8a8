from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "changes"
    verbose_name = "Change management"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from changes.models import ChangeRecord, Freeze

        auditlog.register(ChangeRecord)
        auditlog.register(Freeze, m2m_fields={"environments", "services", "teams"})
