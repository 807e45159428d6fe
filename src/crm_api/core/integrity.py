"""Recognizing constraint violations by SQLSTATE / SQLite error code, never by message text."""

from sqlalchemy.exc import IntegrityError

_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


def is_unique_violation(error: Exception) -> bool:
    """For SQLAlchemy's IntegrityError and for asyncpg's own errors (raw-pool writes)."""
    original = error.orig if isinstance(error, IntegrityError) else error
    if getattr(original, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    if getattr(original, "pgcode", None) == _PG_UNIQUE_VIOLATION:
        return True
    return getattr(original, "sqlite_errorname", None) in _SQLITE_UNIQUE
