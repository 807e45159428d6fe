"""The inserts that make up one change, sent to the database together.

A create writes the record, its history rows, its audit row and its outbox events. On
PostgreSQL they go as one statement (a chain of data-modifying CTEs): one round trip instead
of one per row, and atomic even on its own. SQLite cannot put DML in a CTE, so there they go
one by one, inside the session's transaction all the same.

The CTEs of one statement run in no defined order, so rows that must keep their order (a
change's events, whose ids number them) go in one multi-row INSERT per table and columns, whose
rows are inserted in the order given.
"""

from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, Table, bindparam, insert

from crm_api.core.reader import Reader

_Shape = tuple[tuple[Table, tuple[str, ...], tuple[int, ...]], ...]
"""Per (table, columns), in order of first appearance: the indexes of its rows."""


class InsertBatch:
    def __init__(self) -> None:
        self._rows: list[tuple[Table, dict[str, Any]]] = []

    def add(self, table: Table, values: dict[str, Any]) -> None:
        self._rows.append((table, values))

    def extend(self, other: "InsertBatch") -> None:
        """Adds the rows of `other`, in its order."""
        self._rows.extend(other._rows)

    async def flush(self, reader: Reader) -> None:
        rows, self._rows = self._rows, []
        if reader.db.is_sqlite:
            for table, values in rows:
                await reader.write_session.execute(insert(table), values)
            return
        groups: dict[tuple[Table, tuple[str, ...]], list[int]] = {}
        for index, (table, values) in enumerate(rows):
            groups.setdefault((table, tuple(values)), []).append(index)
        shape = tuple(
            (table, columns, tuple(indexes)) for (table, columns), indexes in groups.items()
        )
        params = {
            f"p{i}_{column}": value
            for i, (_, values) in enumerate(rows)
            for column, value in values.items()
        }
        await reader.execute_atomic(_chained_insert(shape), params)


@lru_cache(maxsize=512)
def _chained_insert(shape: _Shape) -> Insert:
    """One INSERT per (table, columns), the first ones as CTEs of the last; built once per shape
    so SQLAlchemy compiles it once."""

    def insert_of(table: Table, columns: tuple[str, ...], indexes: tuple[int, ...]) -> Insert:
        rows = [
            {c: bindparam(f"p{index}_{c}", type_=table.c[c].type) for c in columns}
            for index in indexes
        ]
        return insert(table).values(rows)

    *leading, last = shape
    statement = insert_of(*last)
    for number, group in enumerate(leading):
        statement = statement.add_cte(insert_of(*group).cte(f"w{number}"))
    return statement
