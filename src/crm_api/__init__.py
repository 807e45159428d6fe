"""crm-api: an API-first, headless CRM service."""

__version__ = "0.1.0"
