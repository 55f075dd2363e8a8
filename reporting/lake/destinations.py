"""Where data-lake exports go: storage aliases, the default folder, and how far the ledger is.

Kept apart from the exporter so that the status page (loaded by every web process) does not
import pyarrow, which only the worker and the command need.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import FileSystemStorage, InvalidStorageError, Storage, storages

from governance.models import LedgerHead

DEFAULT_DESTINATION = "lake"


class LakeError(Exception):
    """An export that cannot run or could not finish; the message says what to fix."""


def destinations() -> list[str]:
    """The storage aliases the periodic export writes to (settings.LAKE_DESTINATIONS)."""
    return list(getattr(settings, "LAKE_DESTINATIONS", [DEFAULT_DESTINATION]))


def lake_storage(destination: str) -> Storage:
    """The storage behind `destination`; the default one is a folder under SIGNOFF_VAR_DIR until
    STORAGES names it otherwise."""
    try:
        return storages[destination]
    except InvalidStorageError:
        if destination == DEFAULT_DESTINATION:
            return FileSystemStorage(location=settings.VAR_DIR / "lake")
        raise LakeError(
            f"No storage named '{destination}' in STORAGES: add it to settings "
            "(a folder or an S3-compatible bucket, see docs/lake.md), or pick another destination."
        ) from None


def head_seq() -> int:
    return LedgerHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
