"""Enumerations shared by several slices."""

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    rep = "rep"
    viewer = "viewer"


class LifecycleStage(StrEnum):
    subscriber = "subscriber"
    lead = "lead"
    mql = "mql"
    sql = "sql"
    opportunity = "opportunity"
    customer = "customer"
    evangelist = "evangelist"
    churned = "churned"
    other = "other"


def sql_in(enum: type[StrEnum]) -> str:
    """The body of a CHECK constraint that keeps a column within `enum`."""
    return "IN (" + ", ".join(f"'{member.value}'" for member in enum) + ")"


class StageKind(StrEnum):
    open = "open"
    won = "won"
    lost = "lost"
