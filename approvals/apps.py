from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals.calendar import release_source
        from changes.calendar.entries import register_source

        # Planned releases appear on the change schedule, which cannot import this app.
        register_source("releases", release_source)
