"""Propose a policy folder from git as the policy's next version, through the four-eyes
services. Lives in approvals: finding loosening means simulating past releases."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.policy_editor import services as editor
from approvals.policy_editor.simulation import DEFAULT_DAYS, MAX_DAYS
from governance.exceptions import GovernanceError
from governance.people.models import User
from governance.policy import folder as policy_folder
from governance.policy.models import Policy


class Command(BaseCommand):
    help = (
        "Propose the policy in a folder of YAML files as the next version: published at once, "
        "or a proposal for a second administrator when the person governs approvals or when "
        "the change loosens control on regulated environments (found by simulating the "
        "releases of the last --days days)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", help="The folder holding the policy's *.yaml files.")
        parser.add_argument(
            "--as", dest="username", required=True, help="The administrator proposing it."
        )
        parser.add_argument("--policy", help="Policy slug; default: the active policy.")
        parser.add_argument("--comment", default="", help="Why; default names the folder.")
        parser.add_argument(
            "--days", type=int, default=DEFAULT_DAYS, help="Simulation window (1-365 days)."
        )

    def handle(self, *args, folder: str, username: str, **options) -> None:
        if not 1 <= options["days"] <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        try:
            checked = policy_folder.check(policy_folder.read_folder(Path(folder)), folder)
        except policy_folder.FolderError as exc:
            raise CommandError(str(exc)) from None
        try:
            proposed = editor.propose_policy(
                policy_obj=_policy(options.get("policy")),
                source=checked.combined.source,
                actor=_user(username),
                comment=options["comment"] or f"Imported from {Path(folder).name}/",
                days=options["days"],
            )
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
        self._report(proposed)

    def _report(self, proposed: editor.Proposed) -> None:
        result = proposed.result
        if proposed.published:
            self.stdout.write(f"published v{result.number} (checksum {result.checksum[:12]})")
            return
        self.stdout.write(f"proposal #{result.pk}: waits for a second administrator")
        for item in proposed.simulation.loosening():
            self.stdout.write(f"  loosens {item}")


def _policy(slug: str | None) -> Policy:
    policies = Policy.objects.filter(slug=slug) if slug else Policy.objects.filter(is_active=True)
    found = policies.order_by("name").first()
    if found is None:
        raise CommandError(f"No policy {slug!r}." if slug else "No active policy.")
    return found


def _user(username: str) -> User:
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise CommandError(f"No user {username!r}.") from None
