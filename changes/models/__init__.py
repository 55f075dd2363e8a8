"""Every changes model, importable from one place. Each concern owns its models
(`changes/<concern>/models.py`); Django finds them here, under the app label `changes`."""

from changes.cab.models import AgendaItem, CabMeeting, CabSchedule
from changes.freezes.models import Freeze, FreezeOverride
from changes.incidents.models import (
    ExternalServiceMapping,
    Incident,
    IntegrationConfig,
    WebhookDelivery,
)
from changes.records.models import ChangeRecord
from changes.reviews.models import Review, ReviewAction
from changes.servicenow.models import ServiceNowConfig, ServiceNowRecord

__all__ = [
    "AgendaItem",
    "CabMeeting",
    "CabSchedule",
    "ChangeRecord",
    "ExternalServiceMapping",
    "Freeze",
    "FreezeOverride",
    "Incident",
    "IntegrationConfig",
    "Review",
    "ReviewAction",
    "ServiceNowConfig",
    "ServiceNowRecord",
    "WebhookDelivery",
]
