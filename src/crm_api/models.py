"""Every ORM model, imported once so Alembic and tests see the whole schema."""

from crm_api.activities.models import Activity, ActivityContact
from crm_api.companies.models import Company
from crm_api.contacts.models import Contact, LifecycleChange
from crm_api.core.audit import AuditEntry
from crm_api.core.db import Base
from crm_api.core.events import Event, FeedState
from crm_api.custom_fields.models import CustomFieldDefinition
from crm_api.deals.models import Deal, DealContact, DealStageChange, LineItem
from crm_api.idempotency.models import IdempotencyKey
from crm_api.imports.models import (
    Import,
    ImportDryKey,
    ImportDryRecord,
    ImportPart,
    ImportRowError,
)
from crm_api.pipelines.models import Pipeline, Stage
from crm_api.products.models import Product
from crm_api.tasks.models import Task
from crm_api.users.models import ApiKey, User
from crm_api.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription

metadata = Base.metadata

__all__ = [
    "Activity",
    "ActivityContact",
    "ApiKey",
    "AuditEntry",
    "Company",
    "Contact",
    "CustomFieldDefinition",
    "Deal",
    "DealContact",
    "DealStageChange",
    "Event",
    "FeedState",
    "IdempotencyKey",
    "Import",
    "ImportDryKey",
    "ImportDryRecord",
    "ImportPart",
    "ImportRowError",
    "LifecycleChange",
    "LineItem",
    "Pipeline",
    "Product",
    "Stage",
    "Task",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "metadata",
]
