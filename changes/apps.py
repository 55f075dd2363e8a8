from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "changes"
    verbose_name = "Change management"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from changes.models import ChangeRecord

        auditlog.register(ChangeRecord)
