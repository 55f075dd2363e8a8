"""Demo ServiceNow records, applied through the same service as the push (idempotent).

ServiceNow's CIs for payments-api and search-api are mapped; change CHG0030001 (scheduled, a
window two days ahead) is mirrored on payments-api and incident INC0010001 (P3, in progress) is
open on search-api. A P3 holds nothing, so the README's walkthrough works on any day.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from changes.incidents.models import ExternalServiceMapping
from changes.incidents.services import map_external_service
from changes.servicenow.models import ServiceNowRecord
from changes.servicenow.services import apply_record
from governance.models import Service

# cmdb_ci sys_id → service slug
CIS = {
    "27d32778c0a8000b00db970eeaa60f16": "payments-api",
    "b0cb50c3c0a8000900893e69d3c5885e": "search-api",
}
CHANGE_SYS_ID = "c83c5e5347c12200e0ef563dbb9a7190"
INCIDENT_SYS_ID = "9d385017c611228701d22104cc95c371"
FORMAT = "%Y-%m-%d %H:%M:%S"  # the Table API's, in UTC


class Command(BaseCommand):
    help = "Map the demo ServiceNow CIs and apply a demo change and incident (idempotent)."

    def handle(self, *args, **options) -> None:
        mapped = ExternalServiceMapping.objects.filter(source="servicenow", external_id__in=CIS)
        known = set(mapped.values_list("external_id", flat=True))
        for sys_id, slug in CIS.items():
            if sys_id not in known:
                service = Service.objects.get(slug=slug)
                map_external_service(
                    source="servicenow", external_id=sys_id, service=service, actor="seed_demo"
                )
        applied = [
            apply_record(table, record).outcome
            for table, record in self._records()
            if not ServiceNowRecord.objects.filter(sys_id=record["sys_id"]).exists()
        ]
        self.stdout.write(
            f"Demo ServiceNow records: {applied.count('created')} created, "
            f"{2 - len(applied)} already present."
        )

    def _records(self) -> list[tuple[str, dict]]:
        now = timezone.now().replace(microsecond=0)
        start = (now + timedelta(days=2)).replace(hour=22, minute=0, second=0)
        updated = (now - timedelta(hours=1)).strftime(FORMAT)
        payments_ci, search_ci = CIS
        change = {
            "sys_id": CHANGE_SYS_ID,
            "sys_updated_on": updated,
            "number": "CHG0030001",
            "short_description": "Rotate the payments database credentials",
            "description": "Quarterly credential rotation for the payments database.",
            "type": "normal",
            "state": "-2",
            "risk": "3",
            "impact": "2",
            "start_date": start.strftime(FORMAT),
            "end_date": (start + timedelta(minutes=90)).strftime(FORMAT),
            "assigned_to": {"link": "", "value": "46d44a5dc0a8010e0000d5c0f5d28e3b"},
            "assigned_to.email": "erin@example.com",
            "cmdb_ci": {"link": "", "value": payments_ci},
            "implementation_plan": "Run the rotation job; restart the pods one by one.",
            "test_plan": "Sign in to the database with the new credentials.",
            "backout_plan": "Restore the previous secret from the vault.",
        }
        incident = {
            "sys_id": INCIDENT_SYS_ID,
            "sys_updated_on": updated,
            "number": "INC0010001",
            "short_description": "Search suggestions slow for some users",
            "state": "2",
            "priority": "3",
            "opened_at": (now - timedelta(hours=3)).strftime(FORMAT),
            "cmdb_ci": {"link": "", "value": search_ci},
        }
        return [("change_request", change), ("incident", incident)]
