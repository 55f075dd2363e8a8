"""Write a published policy version out as the folder of YAML files it was imported from."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.policy import folder as policy_folder
from governance.policy.models import Policy, PolicyVersion


class Command(BaseCommand):
    help = (
        "Write a published policy version into a folder: the files it was imported from, or "
        "one policy.yaml when it was written as one document. Importing the folder again gives "
        "the same checksum."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        # `--version N` names the policy version; Django's own --version gives way.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", help="The folder to write (created when missing).")
        parser.add_argument("--policy", help="Policy slug; default: the active policy.")
        parser.add_argument("--version", type=int, help="Version number; default: the latest.")
        parser.add_argument(
            "--clean",
            action="store_true",
            help="Remove other *.yaml files in the folder (they would join the policy).",
        )

    def handle(self, *args, folder: str, **options) -> None:
        version = _version(options.get("policy"), options.get("version"))
        files = policy_folder.split(version.source)
        try:
            removed = policy_folder.write_folder(
                Path(folder), files, clean=options.get("clean", False)
            )
        except policy_folder.FolderError as exc:
            raise CommandError(str(exc)) from None
        for name in removed:
            self.stdout.write(f"removed {name}")
        names = ", ".join(f.name for f in files)
        self.stdout.write(
            f"Wrote {version.policy.slug} v{version.number} to {folder}: {names} "
            f"(checksum {version.checksum[:12]})"
        )


def _version(slug: str | None, number: int | None) -> PolicyVersion:
    policies = Policy.objects.filter(slug=slug) if slug else Policy.objects.filter(is_active=True)
    policy_obj = policies.order_by("name").first()
    if policy_obj is None:
        raise CommandError(f"No policy {slug!r}." if slug else "No active policy.")
    versions = policy_obj.versions.select_related("policy")
    found = versions.filter(number=number).first() if number else versions.first()
    if found is None:
        wanted = f"version {number}" if number else "a published version"
        raise CommandError(f"Policy {policy_obj.slug!r} has no {wanted}.")
    return found
