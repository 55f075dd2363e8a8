"""`manage.py seed_demo_anomalies`: the demo's anomaly alerts (see reporting.anomalies.demo)."""

from django.core.management.base import BaseCommand

from reporting.anomalies.demo import seed_demo_anomalies


class Command(BaseCommand):
    help = "Add a reciprocal pair to the demo organisation and raise the demo's anomaly alerts."

    def handle(self, *args, **options) -> None:
        counts = seed_demo_anomalies()
        self.stdout.write(
            f"Demo anomalies: {counts['releases']} releases made, {counts['alerts']} alerts raised."
        )
