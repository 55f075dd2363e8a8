"""Verify the whole evidence ledger: sequence, hash chain and Ed25519 signatures."""

import time

from django.core.management.base import BaseCommand, CommandError

from governance import ledger


class Command(BaseCommand):
    help = "Check every ledger entry; exit non-zero and name the first bad entry if any."

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        count, problem = ledger.verify()
        elapsed = time.perf_counter() - started
        if problem:
            raise CommandError(
                f"Ledger verification FAILED at {problem} ({count} entries verified before it)."
            )
        rate = count / elapsed if elapsed else 0
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger OK: {count} entries verified in {elapsed:.2f}s ({rate:,.0f} entries/s)."
            )
        )
