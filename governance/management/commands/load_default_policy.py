"""Publish the built-in default policy, unless a policy of that name already exists."""

from pathlib import Path

from django.core.management.base import BaseCommand

from governance.policy.models import Policy
from governance.policy.services import publish_policy

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "policy" / "default.yaml"


class Command(BaseCommand):
    help = "Install Signoff's built-in release policy (idempotent)."

    def handle(self, *args, **options) -> None:
        policy, created = Policy.objects.get_or_create(
            slug="default",
            defaults={
                "name": "Default release policy",
                "source": "",
                "description": "Built-in rules by environment risk, tier, SOX and change type.",
            },
        )
        if not created and policy.version:
            self.stdout.write(f"Policy '{policy.slug}' already at v{policy.version}; unchanged.")
            return
        version = publish_policy(
            policy_obj=policy,
            source=DEFAULT_POLICY.read_text(),
            actor=None,
            comment="Built-in default policy",
        )
        self.stdout.write(self.style.SUCCESS(f"Published {policy.slug} v{version.number}."))
