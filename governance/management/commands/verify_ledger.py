"""Verify the whole evidence ledger: sequence, hash chain, Ed25519 signatures and checkpoints."""

import time

from django.core.management.base import BaseCommand, CommandError

from governance.ledger import checkpoints
from governance.ledger import services as ledger


class Command(BaseCommand):
    help = (
        "Check every ledger entry, then the latest signed checkpoint (the ledger must reach it "
        "unchanged); exit non-zero and name the first problem if any."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--all-checkpoints",
            action="store_true",
            help="Check every stored checkpoint, not only the latest (reads every file).",
        )

    def handle(self, *args, all_checkpoints: bool = False, **options) -> None:
        started = time.perf_counter()
        count, problem = ledger.verify()
        elapsed = time.perf_counter() - started
        if problem:
            raise CommandError(
                f"Ledger verification FAILED at {problem} ({count} entries verified before it)."
            )
        # The chain alone cannot show that entries were cut from its end; a checkpoint can.
        verdict = checkpoints.verify_checkpoints(count, every=all_checkpoints)
        if verdict.problem:
            raise CommandError(
                f"Ledger verification FAILED against checkpoint {verdict.failed}: "
                f"{verdict.problem}."
            )
        rate = count / elapsed if elapsed else 0
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger OK: {count} entries verified in {elapsed:.2f}s ({rate:,.0f} entries/s)."
            )
        )
        self._report(verdict, all_checkpoints)

    def _report(self, verdict: checkpoints.CheckpointVerdict, every: bool) -> None:
        if verdict.latest is None:
            self.stderr.write(
                "WARNING: no ledger checkpoint found, so a shortened or emptied ledger would go "
                "unnoticed; write one with `manage.py ledger_checkpoint`.",
                style_func=self.style.WARNING,
            )
            return
        checkpoint = verdict.latest.checkpoint
        counted = f"; {verdict.checked} checkpoints checked" if every else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint OK: entry #{checkpoint.seq} matches {verdict.latest.name} "
                f"(signed {checkpoint.recorded_at}){counted}."
            )
        )
