"""Demo incidents and service dependencies, made through the real services (idempotent).

An open P2 (high urgency) PagerDuty incident on web-frontend holds web-frontend's production
release; payments-api's incident is resolved, so nothing here holds payments-api (the README's
walkthrough must work on any day).
"""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from changes.incidents import services
from changes.incidents.models import Incident
from governance.models import Service

# service slug → the services it needs at run time. None of them has an open incident.
DEPENDENCIES = {
    "web-frontend": ["checkout-service", "search-api", "identity-service"],
    "checkout-service": ["payments-api"],
    "payments-api": ["payments-ledger", "identity-service"],
}
# source, external id, url, title, priority, urgency, service, opened hours ago, final status
INCIDENTS = [
    (
        "pagerduty",
        "Q2DEMOWEB1",
        "https://acme.pagerduty.com/incidents/Q2DEMOWEB1",
        "Product pages slow in eu-west (p95 4 s)",
        "P2",
        "high",
        "web-frontend",
        2,
        "acknowledged",
    ),
    (
        "api",
        "INC0040112",
        "https://status.example.com/incidents/40112",
        "Card authorisations timing out at the acquirer",
        "P1",
        "high",
        "payments-api",
        72,
        "resolved",
    ),
]


class Command(BaseCommand):
    help = "Create the demo incidents and service dependencies (idempotent)."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            for slug, needs in DEPENDENCIES.items():
                Service.objects.get(slug=slug).depends_on.add(
                    *Service.objects.filter(slug__in=needs)
                )
        created = sum(self._incident(*row) for row in INCIDENTS)
        self.stdout.write(
            f"Demo incidents: {created} created, {len(INCIDENTS) - created} already present."
        )

    def _incident(self, source, external_id, url, title, priority, urgency, slug, hours, status):
        if Incident.objects.filter(source=source, external_id=external_id).exists():
            return False
        service = Service.objects.get(slug=slug)
        report = services.IncidentReport(
            source=source,
            external_id=external_id,
            title=title,
            status="triggered",
            external_url=url,
            priority=priority,
            urgency=urgency,
            services=(service,),
            opened_at=timezone.now() - timedelta(hours=hours),
        )
        # Opened, then moved on, as its source would have reported it: both are ledgered.
        services.record_incident(report=report, actor=source)
        services.record_incident(
            report=services.IncidentReport(
                source=source, external_id=external_id, title=title, status=status
            ),
            actor=source,
        )
        return True
