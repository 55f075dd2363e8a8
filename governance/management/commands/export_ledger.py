"""Export the ledger as JSON lines plus the public keys, for verification away from Signoff."""

import json
import sys

from django.core.management.base import BaseCommand

from governance.ledger import format as ledger_format
from governance.ledger import services as ledger


class Command(BaseCommand):
    help = "Write the ledger as JSON lines (first line: public keys) to stdout or --output."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", help="File to write; default stdout.")

    def handle(self, *args, output: str | None = None, **options) -> None:
        stream = open(output, "w") if output else sys.stdout  # noqa: SIM115
        try:
            keys = {
                kid: ledger_format.public_key_text(k) for kid, k in ledger.public_keys().items()
            }
            stream.write(json.dumps({"public_keys": keys}) + "\n")
            for entry in ledger.stored_entries():
                stream.write(json.dumps(entry, sort_keys=True) + "\n")
        finally:
            if output:
                stream.close()
