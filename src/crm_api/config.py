"""Runtime configuration, read from `CRM_*` environment variables."""

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./crm.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_SQLITE_URL,
        description="SQLAlchemy async URL; unset means a SQLite file `crm.db` in the working dir.",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections per process (PostgreSQL).")
    lock_timeout_ms: int = Field(
        default=5000,
        ge=1,
        le=600_000,
        description="How long a request waits for a lock another transaction holds (a row it "
        "updates, SQLite's write lock) before it gets 503 with Retry-After, nothing written.",
    )
    default_phone_region: str = Field(
        default="US", min_length=2, max_length=2, description="Region for phones without +prefix."
    )
    default_currency: str = Field(
        default="USD",
        pattern="^[A-Z]{3}$",
        description="ISO 4217 currency of deals created without one.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    auth_cache_ttl_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified API key is trusted in-process before it is re-read.",
    )
    event_retention_days: int = Field(
        default=30, ge=1, le=3650, description="How long the change feed keeps events."
    )
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Let webhooks go to private, loopback and link-local addresses (tests, "
        "closed networks). Off, such targets are refused (SSRF).",
    )
    webhook_secret_overlap_hours: float = Field(
        default=24, ge=0, le=720, description="How long a rotated-out secret still signs."
    )
    webhook_disable_after_days: float = Field(
        default=5, gt=0, le=90, description="A subscription failing this long is disabled."
    )
    webhook_timeout_seconds: float = Field(
        default=10, gt=0, le=60, description="How long a webhook endpoint has to answer."
    )
    in_process_worker: bool = Field(
        default=True,
        description="Run the background worker inside each `serve` process (the embedded "
        "default); production turns it off and runs `crm-api worker` processes.",
    )
    worker_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the worker looks for work."
    )
    import_max_bytes: int = Field(
        default=52_428_800,
        ge=1024,
        description="Largest CSV import upload (the whole multipart body); larger gets 413.",
    )
    import_max_rows: int = Field(
        default=1_000_000, ge=1, description="Most data rows an import file may have (422)."
    )
    import_chunk_rows: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="Rows the worker writes per transaction (set when a file is uploaded).",
    )
    import_lease_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="How long a worker holds an import between chunks; a job whose worker "
        "died is taken over after this.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=True, description="Log one JSON line per request.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
