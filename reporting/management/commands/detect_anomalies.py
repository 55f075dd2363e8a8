"""`manage.py detect_anomalies`: run the anomaly detectors now, as beat does."""

from django.core.management.base import BaseCommand

from reporting.anomalies.services import detect_anomalies


class Command(BaseCommand):
    help = "Run the anomaly detectors over the rolling window and raise what is new."

    def handle(self, *args, **options) -> None:
        raised = detect_anomalies()
        for alert in raised:
            self.stdout.write(f"{alert.get_kind_display()}: {alert.summary}")
        self.stdout.write(self.style.SUCCESS(f"{len(raised)} new alert(s) raised."))
