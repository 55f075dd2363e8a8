from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals.calendar import release_source
        from approvals.change_releases import linked_release_rows
        from changes.calendar.entries import register_source
        from changes.records.selectors import register_release_lister

        # Planned releases appear on the change schedule, and a change's releases on its page:
        # both live in the changes app, which cannot import this one.
        register_source("releases", release_source)
        register_release_lister("releases", linked_release_rows)

        # Outbox channels and pipeline answerers register themselves on import: in the worker
        # nothing else imports them.
        from approvals.pipelines import azure, channels  # noqa: F401
