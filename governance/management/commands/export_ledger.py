"""Export the ledger as JSON lines plus the public keys, for verification away from Signoff."""

import sys

from django.core.management.base import BaseCommand

from governance.ledger import export


class Command(BaseCommand):
    help = (
        "Write the ledger as JSON lines (first line: a header with the public keys) to stdout "
        "or --output; check it with tools/verify_ledger.py."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", help="File to write; default stdout.")

    def handle(self, *args, output: str | None = None, **options) -> None:
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        try:
            stream.writelines(export.export_chunks())
        finally:
            if output:
                stream.close()
