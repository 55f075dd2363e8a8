"""Rotate the ledger's signing key: a new key, the hand-over in the ledger, and the steps to switch.

    manage.py rotate_ledger_key --output /run/secrets/ledger-signing-2.key --by ada --reason "..."

The private key is written to a new file (mode 0600), or printed alone on stdout with --print
(for a pipe into a secret store), or taken from --key-file when the secret store made it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandError

from governance.authority.services import is_administrator
from governance.ledger import format as ledger_format
from governance.ledger import rotation
from governance.people.selectors import person_named


class Command(BaseCommand):
    help = (
        "Generate a new Ed25519 ledger signing key (or take --key-file), record the hand-over "
        "in the ledger signed by the current key, and print what to configure."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", help="A new file to write the private key to (mode 0600).")
        parser.add_argument(
            "--print",
            action="store_true",
            dest="print_key",
            help="Print the private key (and only it) on stdout; the steps go to stderr.",
        )
        parser.add_argument(
            "--key-file", help="Rotate to the private key already in this file (base64)."
        )
        parser.add_argument("--by", required=True, help="the administrator rotating (username)")
        parser.add_argument("--reason", required=True, help="why, for the ledger")

    def handle(self, *args, **options) -> None:
        actor = self._administrator(options["by"])
        if not options["reason"].strip():
            raise CommandError("Key rotation REFUSED: give a reason, for the ledger.")
        new_key = self._new_key(options)
        try:
            rotation.prepare_rotation(new_key)
            if options["output"]:
                rotation.write_private_key(Path(options["output"]), new_key)
            done = rotation.record_rotation(new_key=new_key, actor=actor, reason=options["reason"])
        except rotation.KeyRotationRefused as exc:
            raise CommandError(f"Key rotation REFUSED: {exc}") from None
        if options["print_key"]:
            self.stdout.write(ledger_format.private_key_text(new_key))
        # With --print, stdout holds the key alone (for a pipe); the steps are not an error.
        steps = self.stderr if options["print_key"] else self.stdout
        steps.write(
            instructions(done, options["output"] or options["key_file"]), style_func=lambda x: x
        )

    def _administrator(self, name: str) -> str:
        person = person_named(name)
        if person is None or not person.is_active or not is_administrator(person):
            raise CommandError(f"Key rotation REFUSED: {name!r} is not an active administrator.")
        return person.username

    def _new_key(self, options: dict) -> Ed25519PrivateKey:
        if options["key_file"]:
            if options["output"] or options["print_key"]:
                raise CommandError(
                    "Key rotation REFUSED: --key-file names a key that exists already; "
                    "--output and --print are for a generated one."
                )
            try:
                text = Path(options["key_file"]).read_text().strip()
                return ledger_format.load_private_key(text)
            except (OSError, ValueError) as exc:
                raise CommandError(
                    f"Key rotation REFUSED: {options['key_file']} holds no Ed25519 key ({exc})."
                ) from None
        if not (options["output"] or options["print_key"]):
            raise CommandError(
                "Key rotation REFUSED: say where the new private key goes: --output PATH "
                "(a new file, mode 0600) or --print."
            )
        return Ed25519PrivateKey.generate()


def instructions(done: rotation.Rotation, key_file: str | None) -> str:
    """What the operator does next, with the exact values to configure."""
    old_id, new_id = ledger_format.key_id(done.old_key), ledger_format.key_id(done.new_key)
    retired = [*rotation.retired_public_keys(), ledger_format.public_key_text(done.old_key)]
    new_key_setting = (
        f"LEDGER_SIGNING_KEY_FILE={Path(key_file).resolve()}"
        if key_file
        else "LEDGER_SIGNING_KEY=<the private key printed above>"
    )
    return (
        f"New ledger signing key: {new_id} (old key: {old_id}).\n"
        f"Hand-over recorded: entry #{done.entry.seq} ({done.entry.kind}), signed by {old_id}, "
        f"anchored by checkpoint {done.checkpoint.name}.\n"
        "Next, for web, worker and beat alike:\n"
        f"  1. Set {new_key_setting}\n"
        "  2. Keep the old public key so everything it signed still verifies:\n"
        f"     LEDGER_PUBLIC_KEYS={','.join(dict.fromkeys(retired))}\n"
        "  3. Restart them all, then run `manage.py verify_ledger` and "
        "`manage.py ledger_checkpoint`.\n"
        "  4. Destroy the old private key; give auditors the new /reports/ledger/public-key.pem.\n"
    )
