"""One SQL text, two engines: DuckDB's dialect as written, Trino's (Athena engine 3) by sqlglot."""

from __future__ import annotations

from functools import cache

Dialect = str  # "duckdb" | "trino"


def to_trino(sql: str) -> str:
    return _transpile(sql, "trino")


def in_dialect(sql: str, dialect: Dialect) -> str:
    return sql if dialect == "duckdb" else _transpile(sql, dialect)


@cache
def _transpile(sql: str, dialect: str) -> str:
    import sqlglot  # imported on first use: a function that never reports never pays for it

    return sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=False)[0]


def check_parses(sql: str, dialect: Dialect) -> None:
    """Raise sqlglot's ParseError if `sql` is not valid in `dialect`."""
    import sqlglot

    sqlglot.parse_one(sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
