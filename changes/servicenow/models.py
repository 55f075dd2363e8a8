"""ServiceNow: where its records come from and which version of each one was applied.

The token ServiceNow presents is kept as a SHA-256 digest only (it is random and long, so a
fast hash is enough); the pull's password stays in a file this model only names.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ServiceNowConfig(models.Model):
    """The one ServiceNow instance (the row with pk 1): the inbound token's digest and how to
    pull from it.

    Not registered with django-auditlog: the ledger records each change, the token masked.
    """

    token_digest = models.CharField(max_length=64, blank=True, help_text="SHA-256, hex.")
    token_hint = models.CharField(max_length=8, blank=True, help_text="The token's last four.")
    instance_url = models.URLField(max_length=200, blank=True)
    username = models.CharField(max_length=100, blank=True)
    password_file = models.CharField(
        max_length=500, blank=True, help_text="A file holding the pull user's password."
    )
    pulled_through = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per table, the newest sys_updated_on a finished pull read (ISO 8601).",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "ServiceNow configuration"

    def __str__(self) -> str:
        return f"ServiceNow {self.instance_url or '(no instance)'}"


class ServiceNowRecord(models.Model):
    """The `sys_updated_on` applied for one ServiceNow record, so that a redelivery changes
    nothing and an older version never overwrites a newer one."""

    class Table(models.TextChoices):
        CHANGE_REQUEST = "change_request", "Change request"
        INCIDENT = "incident", "Incident"

    table = models.CharField(max_length=20, choices=Table.choices)
    sys_id = models.CharField(max_length=64)
    number = models.CharField(max_length=64, blank=True)
    sys_updated_on = models.DateTimeField()
    applied_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["table", "sys_id"], name="unique_servicenow_record"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.table} {self.number or self.sys_id} @ {self.sys_updated_on:%Y-%m-%d %H:%M:%S}"
        )
