"""Check a policy folder the way CI does: valid, or compiler-style errors and exit status 1."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from governance.policy import folder as policy_folder


class Command(BaseCommand):
    help = (
        "Validate a folder of policy YAML files (*.yaml, in name order) as one policy. Prints "
        "'OK: N rules in M files', or one 'path/file.yaml:LINE:COLUMN: message' line per "
        "problem and exits with status 1. Needs no database."
    )
    # Meant for CI, where no database is running: nothing here may need one.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", help="The folder holding the policy's *.yaml files.")

    def handle(self, *args, folder: str, **options) -> None:
        try:
            files = policy_folder.read_folder(Path(folder))
            checked = policy_folder.check(files, folder)
        except policy_folder.FolderError as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            raise SystemExit(1) from None
        self.stdout.write(f"OK: {checked.rule_count} rules in {len(files)} files")
