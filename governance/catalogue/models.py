"""Third parties whose releases of the SaaS services we depend on go through our approvals."""

from __future__ import annotations

from django.db import models


class Vendor(models.Model):
    """A supplier with its contacts and the service levels agreed for its releases."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    contact_name = models.CharField(max_length=100, blank=True)
    contact_email = models.EmailField(blank=True)
    support_url = models.URLField(blank=True)
    notice_period_hours = models.PositiveIntegerField(
        default=72, help_text="How long before a release the vendor must announce it."
    )
    approval_turnaround_hours = models.PositiveIntegerField(
        default=24, help_text="How long we have to decide once a vendor release is announced."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
