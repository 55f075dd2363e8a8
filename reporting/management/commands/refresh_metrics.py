"""`manage.py refresh_metrics [--full]`: bring the metrics' rollups up to date now, as the
worker's periodic task does; --full rebuilds every release (after a bulk import)."""

from django.core.management.base import BaseCommand

from reporting.metrics.rollups import refresh_metrics


class Command(BaseCommand):
    help = "Refresh the approval metrics' rollups (every release with --full)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--full", action="store_true", help="rebuild every release")

    def handle(self, *args, full: bool = False, **options) -> None:
        rebuilt = refresh_metrics(full=full)
        self.stdout.write(f"Metrics rollups: {rebuilt} releases rebuilt.")
