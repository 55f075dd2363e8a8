"""Rebuild the gate's snapshots from the stored stages, decisions and evidence."""

from django.core.management.base import BaseCommand

from approvals.gate import rebuild_snapshots
from approvals.models import ApprovalRequest


class Command(BaseCommand):
    help = "Rebuild every approval request's gate snapshot (or only missing ones with --missing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--missing", action="store_true", help="Only requests without one.")

    def handle(self, *args, missing: bool = False, **options) -> None:
        approvals = ApprovalRequest.objects.all()
        if missing:
            approvals = approvals.filter(gate_snapshot={})
        count = rebuild_snapshots(approvals)
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {count} gate snapshots."))
