"""Full-text matching and relevance over a table's text columns, on both databases.

PostgreSQL: a `tsvector` of the columns (the `simple` configuration: no stemming, names and
emails are not words of a language), matched by prefix (`word:*`) and ranked by `ts_rank`; an
expression GIN index (migration 0016) holds exactly the document below. SQLite: an FTS5 table
`<table>_fts` kept by triggers (migration 0013), matched by prefix (`"word"*`) and ranked by
`bm25`. Both are updated in the writing transaction: a record is findable once its write returns.

Emails count as words at their dots and @ (`jane.doe@acme.com` is found by `acme`). Accents do
not count (`muller` finds Müller, `jose` José): FTS5's tokenizer drops them on SQLite, and on
PostgreSQL both the document and the query go through `crm_unaccent` (migration 0016: the
`unaccent` extension's function, made immutable so an index can hold it).
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean, Float


@dataclass(frozen=True)
class TextIndex:
    """The text columns of `table` that full-text search reads; `split` ones (emails,
    domains) are words at their dots and @ signs."""

    table: Table
    columns: tuple[str, ...]
    split: tuple[str, ...] = ()

    def document(self) -> str:
        """PostgreSQL's tsvector of a row, exactly as the migration indexes it."""
        parts = []
        for name in self.columns:
            column = f"{self.table.name}.{name}"
            if name in self.split:
                column = f"translate({column}, '@.', '  ')"
            parts.append(f"coalesce({column}, '')")
        text = " || ' ' || ".join(parts)
        return f"to_tsvector('simple'::regconfig, crm_unaccent({text}))"


class _OverText(FunctionElement[Any]):
    """SQL over a `TextIndex` and a bound query: the index's table is part of the SQL."""

    inherit_cache = True

    def __init__(self, index: TextIndex, query: Any) -> None:
        self.index = index
        super().__init__(query)

    def _gen_cache_key(self, anon_map: Any, bindparams: Any) -> Any:
        return (*super()._gen_cache_key(anon_map, bindparams), self.index.table.name)


class text_match(_OverText):  # noqa: N801 - used like a SQL function
    """Whether a row of the index's table matches the query bound as `query`."""

    inherit_cache = True
    name = "text_match"
    type = Boolean()


class text_rank(_OverText):  # noqa: N801 - used like a SQL function
    """How well a row matches the query bound as `query` (higher is better; 0 for none)."""

    inherit_cache = True
    name = "text_rank"
    type = Float()


def _query(element: FunctionElement[Any], compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


def _tsquery(query: str) -> str:
    """The query's space-separated words as prefixes, each unaccented and then quoted (quoted
    after: unaccent turns some letters into a quote, the Hawaiian okina say, or a backslash)."""
    word = "replace(crm_unaccent(word), '\\', '')"
    words = f"unnest(string_to_array({query}, ' ')) word"
    # `query` is a bind parameter: nothing here is user text.
    prefixes = f"SELECT quote_literal({word}) || ':*' FROM {words}"  # noqa: S608
    return f"to_tsquery('simple'::regconfig, array_to_string(ARRAY({prefixes}), ' & '))"


@compiles(text_match, "postgresql")
def _text_match_pg(element: text_match, compiler: Any, **kw: Any) -> str:
    query = _query(element, compiler, **kw)
    return f"({element.index.document()} @@ {_tsquery(query)})"


@compiles(text_rank, "postgresql")
def _text_rank_pg(element: text_rank, compiler: Any, **kw: Any) -> str:
    query = _query(element, compiler, **kw)
    rank = f"ts_rank({element.index.document()}, {_tsquery(query)})"
    return f"CAST({rank} AS double precision)"


@compiles(text_match, "sqlite")
def _text_match_sqlite(element: text_match, compiler: Any, **kw: Any) -> str:
    table, query = element.index.table.name, _query(element, compiler, **kw)
    fts = f"{table}_fts"
    # Table names come from the models and the query is a bind: nothing here is user text.
    return f"({table}.rowid IN (SELECT rowid FROM {fts} WHERE {fts} MATCH {query}))"  # noqa: S608


@compiles(text_rank, "sqlite")
def _text_rank_sqlite(element: text_rank, compiler: Any, **kw: Any) -> str:
    table, query = element.index.table.name, _query(element, compiler, **kw)
    fts = f"{table}_fts"
    # bm25 is lower for better matches; negated so that higher is better on both databases.
    matching = f"{fts} MATCH {query} AND {fts}.rowid = {table}.rowid"
    return f"coalesce((SELECT -bm25({fts}) FROM {fts} WHERE {matching}), 0.0)"  # noqa: S608
