"""Load the demo organisation: people, teams, services, environments, roles and the policy.

Idempotent: running it again changes nothing. Releases with history are added by the approvals
app's `seed_demo_releases`, the incidents, ServiceNow records, freezes and planned changes by
the changes app's `seed_demo_incidents`, `seed_demo_servicenow`, `seed_demo_freezes` and
`seed_demo_calendar`, the mapped repositories, clusters and admissions by
`seed_demo_integrations`, the CAB's meeting, escalation and emergency by `seed_demo_cab`, and
what the measuring pages show by reporting's `seed_demo_metrics`, `seed_demo_reviews` and
`seed_demo_anomalies`, all called from here.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from governance.authority.models import Environment, Platform, Role, Service, Target
from governance.authority.services import grant_role
from governance.catalogue.models import Vendor
from governance.people.models import Team, User

DEMO_PASSWORD = "signoff-demo"

PEOPLE = [
    # username, first, last, team, time zone, working hours
    ("alice", "Alice", "Nakamura", "payments", "Europe/London", (8, 17)),
    ("bob", "Bob", "Okafor", "payments", "America/New_York", (9, 18)),
    ("dave", "Dave", "Moreau", "payments", "Europe/Paris", (9, 17)),
    ("frank", "Frank", "Ivanova", "payments", "Europe/Berlin", (8, 16)),
    ("grace", "Grace", "Lindqvist", "web", "Europe/Stockholm", (9, 17)),
    ("heidi", "Heidi", "Fischer", "web", "America/Los_Angeles", (9, 17)),
    ("ivan", "Ivan", "Petrov", "web", "Europe/Sofia", (10, 18)),
    ("judy", "Judy", "Chen", "platform", "Asia/Singapore", (9, 18)),
    ("carol", "Carol", "Singh", "change-advisory", "Europe/London", (9, 17)),
    ("trent", "Trent", "Walker", "change-advisory", "America/Chicago", (8, 16)),
    ("erin", "Erin", "Kowalski", "risk-audit", "Europe/Warsaw", (9, 17)),
    ("sam", "Sam", "Osei", "security", "Europe/Dublin", (8, 17)),
    ("admin", "Ada", "Admin", "platform", "UTC", (0, 24)),
]

TEAMS = [
    ("payments", "Payments"),
    ("web", "Web Experience"),
    ("platform", "Platform Engineering"),
    ("change-advisory", "Change Advisory Board"),
    ("risk-audit", "Risk & Internal Audit"),
    ("security", "Security & Privacy"),
]

SERVICES = [
    # slug, name, tier, team, owners, compliance tags, description
    (
        "payments-api",
        "payments-api",
        1,
        "payments",
        ["alice"],
        ["SOX", "PCI"],
        "Card and bank payment initiation API.",
    ),
    (
        "payments-ledger",
        "payments-ledger",
        1,
        "payments",
        ["bob"],
        ["SOX"],
        "Double-entry ledger of settled payments.",
    ),
    (
        "checkout-service",
        "checkout-service",
        2,
        "web",
        ["heidi"],
        ["PCI"],
        "Basket, pricing and checkout orchestration.",
    ),
    ("web-frontend", "web-frontend", 3, "web", ["grace"], [], "Customer-facing web application."),
    ("search-api", "search-api", 3, "web", ["ivan"], [], "Product search."),
    (
        "identity-service",
        "identity-service",
        2,
        "platform",
        ["judy"],
        ["SOX"],
        "Customer sign-in and sessions.",
    ),
    (
        "ingress-gateway",
        "ingress-gateway",
        2,
        "platform",
        ["judy"],
        [],
        "Edge routing and TLS termination.",
    ),
    (
        "payroll-saas",
        "payroll-saas",
        2,
        "platform",
        ["judy"],
        ["SOX"],
        "Payroll and HR, run by Acme Payroll (SaaS).",
    ),
]

VENDORS = [
    # slug, name, contact, e-mail, notice hours, turnaround hours, services
    (
        "acme-payroll",
        "Acme Payroll",
        "Priya Raman",
        "releases@acme-payroll.example",
        72,
        24,
        ["payroll-saas"],
    ),
]

ENVIRONMENTS = [
    # slug, name, risk, regulated, order, platform
    ("dev", "Development", Environment.Risk.LOW, False, 1, Platform.ON_PREMISES),
    ("staging", "Staging", Environment.Risk.MEDIUM, False, 2, Platform.KUBERNETES),
    ("production", "Production", Environment.Risk.HIGH, True, 3, Platform.KUBERNETES),
]

TARGETS = [
    # environment, slug, name, platform, details
    ("staging", "stg-eu-west-1", "Staging cluster (eu-west-1)", Platform.KUBERNETES, "EKS 1.30"),
    ("production", "prd-eu-west-1", "Production cluster (eu-west-1)", Platform.KUBERNETES, "EKS"),
    ("production", "prd-aws", "Payments AWS account", Platform.AWS, "account 4417-…-0093"),
    ("production", "acme-payroll", "Acme Payroll (vendor)", Platform.SAAS, "vendor-run"),
]

# Business functions SLA rules name (the built-in policy's business-critical SLA: payments).
BUSINESS_FUNCTIONS = {"payments-api": "payments", "payments-ledger": "payments"}

ROLES = [
    # username, role, service slug or None for every service
    ("alice", Role.APPROVER, "payments-api"),
    ("alice", Role.APPROVER, "payments-ledger"),
    ("bob", Role.APPROVER, "payments-api"),
    ("bob", Role.APPROVER, "payments-ledger"),
    ("frank", Role.APPROVER, "payments-ledger"),
    ("frank", Role.APPROVER, "payments-api"),
    ("sam", Role.SECURITY_APPROVER, None),
    ("dave", Role.RELEASE_MANAGER, "payments-api"),
    ("dave", Role.RELEASE_MANAGER, "payments-ledger"),
    ("grace", Role.APPROVER, "web-frontend"),
    ("grace", Role.APPROVER, "search-api"),
    ("heidi", Role.APPROVER, "web-frontend"),
    ("heidi", Role.APPROVER, "checkout-service"),
    ("heidi", Role.RELEASE_MANAGER, "checkout-service"),
    ("ivan", Role.APPROVER, "checkout-service"),
    ("ivan", Role.RELEASE_MANAGER, "web-frontend"),
    ("ivan", Role.RELEASE_MANAGER, "search-api"),
    ("judy", Role.APPROVER, "identity-service"),
    ("judy", Role.APPROVER, "ingress-gateway"),
    ("judy", Role.APPROVER, "payroll-saas"),
    ("frank", Role.APPROVER, "payroll-saas"),
    ("carol", Role.CAB_MEMBER, None),
    ("trent", Role.CAB_MEMBER, None),
    ("erin", Role.AUDITOR, None),
    ("admin", Role.ADMINISTRATOR, None),
    ("ci-bot", Role.RELEASE_MANAGER, None),
]


class Command(BaseCommand):
    help = "Load the demo organisation (idempotent)."

    def handle(self, *args, **options) -> None:
        call_command("load_default_policy", stdout=self.stdout)
        with transaction.atomic():
            teams = {
                slug: Team.objects.get_or_create(slug=slug, defaults={"name": name})[0]
                for slug, name in TEAMS
            }
            people = self._people(teams)
            self._environments()
            self._services(teams, people)
            self._vendors()
            self._roles(people)
        call_command("seed_demo_releases", stdout=self.stdout)
        call_command("seed_demo_incidents", stdout=self.stdout)
        call_command("seed_demo_servicenow", stdout=self.stdout)
        # After the releases, so that the demo's history was planned outside any freeze.
        call_command("seed_demo_freezes", stdout=self.stdout)
        call_command("seed_demo_calendar", stdout=self.stdout)
        call_command("seed_demo_integrations", stdout=self.stdout)
        # What measuring shows: months of approval history for the metrics, last quarter's
        # review and requesters' ratings, and the anomaly alerts the history raises.
        call_command("seed_demo_metrics", stdout=self.stdout)
        call_command("seed_demo_reviews", stdout=self.stdout)
        call_command("seed_demo_anomalies", stdout=self.stdout)
        # Last: the CAB's agenda is built from everything above.
        call_command("seed_demo_cab", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo organisation ready."))

    def _people(self, teams: dict[str, Team]) -> dict[str, User]:
        people = {}
        for username, first, last, team, tz, (start, end) in PEOPLE:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "time_zone": tz,
                    "email": f"{username}@example.com",
                    "working_hours_start": start,
                    "working_hours_end": end,
                    "is_superuser": username == "admin",
                    "is_staff": username == "admin",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            teams[team].members.add(user)
            people[username] = user
        bot, _ = User.objects.get_or_create(
            username="ci-bot",
            defaults={"first_name": "CI", "last_name": "pipeline", "is_service_account": True},
        )
        people["ci-bot"] = bot
        return people

    def _environments(self) -> None:
        for slug, name, risk, regulated, order, platform in ENVIRONMENTS:
            Environment.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "risk": risk,
                    "regulated": regulated,
                    "order": order,
                    "platform": platform,
                },
            )
        for environment, slug, name, platform, details in TARGETS:
            Target.objects.get_or_create(
                environment=Environment.objects.get(slug=environment),
                slug=slug,
                defaults={"name": name, "platform": platform, "details": details},
            )

    def _services(self, teams: dict[str, Team], people: dict[str, User]) -> None:
        for slug, name, tier, team, owners, tags, description in SERVICES:
            service, created = Service.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "tier": tier,
                    "team": teams[team],
                    "compliance_tags": tags,
                    "description": description,
                    "business_function": BUSINESS_FUNCTIONS.get(slug, ""),
                },
            )
            if created:
                service.owners.set([people[o] for o in owners])

    def _vendors(self) -> None:
        for slug, name, contact, email, notice, turnaround, services in VENDORS:
            vendor, _ = Vendor.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "contact_name": contact,
                    "contact_email": email,
                    "notice_period_hours": notice,
                    "approval_turnaround_hours": turnaround,
                },
            )
            Service.objects.filter(slug__in=services, vendor__isnull=True).update(vendor=vendor)

    def _roles(self, people: dict[str, User]) -> None:
        for username, role, service_slug in ROLES:
            service = Service.objects.get(slug=service_slug) if service_slug else None
            grant_role(
                user=people[username],
                role=role,
                service=service,
                reason="Demo organisation",
                actor=None,
            )
