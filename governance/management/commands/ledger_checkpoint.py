"""Write a signed checkpoint of the ledger's head now (beat also does it every five minutes)."""

from django.core.management.base import BaseCommand, CommandError

from governance.ledger import checkpoints


class Command(BaseCommand):
    help = (
        "Sign the ledger's head into a new checkpoint file in the checkpoint storage; skipped "
        "when the last checkpoint already anchors it, refused when the chain no longer extends it."
    )

    def handle(self, *args, **options) -> None:
        try:
            outcome = checkpoints.write_checkpoint()
        except checkpoints.CheckpointRefused as exc:
            raise CommandError(f"Ledger checkpoint REFUSED: {exc}") from exc
        if outcome.stored is None:
            self.stdout.write("Ledger is empty: nothing to anchor yet.")
            return
        seq, name = outcome.stored.checkpoint.seq, outcome.stored.name
        if outcome.written:
            self.stdout.write(
                self.style.SUCCESS(f"Ledger checkpoint written: entry #{seq} in {name}.")
            )
        else:
            self.stdout.write(
                f"Ledger checkpoint unchanged: entry #{seq} is already anchored by {name}."
            )
