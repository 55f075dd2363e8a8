"""Reads for the ServiceNow page: what is configured, the mappings, the latest records."""

from __future__ import annotations

from datetime import datetime

from changes.incidents.models import ExternalServiceMapping
from changes.servicenow.models import ServiceNowConfig, ServiceNowRecord


def settings_context() -> dict:
    """What the administrators' page shows; never the token, only its last four characters."""
    config = ServiceNowConfig.objects.filter(pk=1).first()  # the one row (services)
    return {
        "token_hint": f"…{config.token_hint}" if config and config.token_hint else "",
        "instance_url": config.instance_url if config else "",
        "pull_user": config.username if config else "",
        "pulled_through": [
            (table, datetime.fromisoformat(mark))
            for table, mark in sorted((config.pulled_through if config else {}).items())
        ],
        "mappings": ExternalServiceMapping.objects.filter(source="servicenow")
        .select_related("service")
        .order_by("external_id"),
        "latest_records": ServiceNowRecord.objects.order_by("-applied_at")[:10],
    }
