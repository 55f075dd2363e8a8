"""Map an outside tool's service id or a repository to a catalogue service (ledgered)."""

from django.core.management.base import BaseCommand, CommandError

from approvals.pipelines import services as pipelines
from changes.exceptions import InvalidIncident
from changes.incidents.services import map_external_service
from governance.exceptions import GovernanceError
from governance.models import Service


class Command(BaseCommand):
    help = (
        "Map a PagerDuty service id, or a ServiceNow cmdb_ci / business_service sys_id, to a "
        "service: `map_external pagerduty PXXXXXX payments-api`, "
        "`map_external servicenow 27d32778c0a8000b00db970eeaa60f16 payments-api`; or say "
        "which service a repository builds: `map_external github acme/payments-api "
        "payments-api`, `map_external gitlab acme/payments/api payments-api`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", choices=["pagerduty", "servicenow", "github", "gitlab"])
        parser.add_argument("external_id", help="The outside id, or owner/repo for GitHub/GitLab.")
        parser.add_argument("service")
        parser.add_argument("--reason", default="", help="Why, for the ledger.")
        parser.add_argument("--actor", default="manage.py", help="Who did it, for the ledger.")

    def handle(self, *args, source, external_id, service, actor, reason, **options) -> None:
        target = Service.objects.filter(slug=service).first()
        if target is None:
            raise CommandError(f"No service '{service}'.")
        try:
            if source in ("github", "gitlab"):
                mapping = pipelines.map_repository(
                    provider=source,
                    repository=external_id,
                    service=target,
                    actor=actor,
                    reason=reason,
                )
                external_id = mapping.repository
            else:
                map_external_service(
                    source=source, external_id=external_id, service=target, actor=actor
                )
        except (InvalidIncident, GovernanceError) as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{source} {external_id.strip()} → {target.slug}")
