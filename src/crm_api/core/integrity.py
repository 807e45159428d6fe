"""Recognizing database errors by SQLSTATE / SQLite error code, never by message text: for
SQLAlchemy's errors (the original is their `orig`) and for asyncpg's own (raw-pool writes)."""

from sqlalchemy.exc import DBAPIError

_PG_UNIQUE_VIOLATION = "23505"
_PG_FOREIGN_KEY_VIOLATION = "23503"
_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
# Failures of concurrency, not of the request: the same request can succeed when retried.
_PG_TRANSIENT = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available: lock_timeout ran out
}
_SQLITE_TRANSIENT = {"SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "SQLITE_LOCKED"}


def _codes(error: Exception) -> tuple[str | None, str | None]:
    """The error's SQLSTATE (PostgreSQL) and SQLite error name; None where it has none."""
    original = error.orig if isinstance(error, DBAPIError) else error
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return sqlstate, getattr(original, "sqlite_errorname", None)


def is_unique_violation(error: Exception) -> bool:
    sqlstate, sqlite_name = _codes(error)
    return sqlstate == _PG_UNIQUE_VIOLATION or sqlite_name in _SQLITE_UNIQUE


def is_foreign_key_violation(error: Exception) -> bool:
    sqlstate, sqlite_name = _codes(error)
    return sqlstate == _PG_FOREIGN_KEY_VIOLATION or sqlite_name == "SQLITE_CONSTRAINT_FOREIGNKEY"


def is_transient(error: Exception) -> bool:
    """A deadlock, a serialization failure or a lock wait that timed out."""
    sqlstate, sqlite_name = _codes(error)
    return sqlstate in _PG_TRANSIENT or sqlite_name in _SQLITE_TRANSIENT
