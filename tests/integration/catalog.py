"""What a database's catalog says its schema is, as plain comparable lines per table.

Used to prove that a database upgraded through every migration equals one created from the
current-schema snapshot (tests/integration/schema/<dialect>.sql). The bookkeeping table
`schema_version` is left out: only the migrated database has it.
"""

from __future__ import annotations

import re

from tests.integration.helpers import query

Catalog = dict[str, list[str]]

_SQLITE_TABLES = """
SELECT name, sql FROM sqlite_master
WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_version' ORDER BY name
"""
_PG_COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity,
       identity_generation
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name != 'schema_version'
ORDER BY table_name, ordinal_position
"""
_PG_INDEXES = """
SELECT tablename AS table_name, replace(indexdef, schemaname || '.', '') AS definition
FROM pg_indexes
WHERE schemaname = current_schema() AND tablename != 'schema_version'
ORDER BY tablename, indexname
"""
_PG_CONSTRAINTS = """
SELECT c.relname AS table_name, k.conname, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint AS k
JOIN pg_class AS c ON c.oid = k.conrelid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname != 'schema_version'
ORDER BY c.relname, k.conname
"""


def describe(url: str) -> Catalog:
    return _describe_sqlite(url) if url.startswith("sqlite:") else _describe_postgresql(url)


def _describe_sqlite(url: str) -> Catalog:
    catalog: Catalog = {}
    for table in query(url, _SQLITE_TABLES):
        name = table["name"]
        lines = [f"table {_normalise(table['sql'])}"]
        lines += [
            f"column {c['name']} {c['type']} notnull={c['notnull']} default={c['dflt_value']} "
            f"pk={c['pk']}"
            for c in query(url, f"PRAGMA table_xinfo('{name}')")
        ]
        lines += [
            f"index {index['name']} {_normalise(index['sql'] or index['name'])}"
            for index in query(
                url,
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = '{name}' "
                "ORDER BY name",
            )
        ]
        lines += [
            f"foreign key {fk['from']} -> {fk['table']}.{fk['to']} on delete {fk['on_delete']}"
            for fk in query(url, f"PRAGMA foreign_key_list('{name}')")
        ]
        catalog[name] = lines
    return catalog


def _describe_postgresql(url: str) -> Catalog:
    catalog: Catalog = {}
    for c in query(url, _PG_COLUMNS):
        catalog.setdefault(c["table_name"], []).append(
            f"column {c['column_name']} {c['data_type']} nullable={c['is_nullable']} "
            f"default={c['column_default']} identity={c['is_identity']} "
            f"{c['identity_generation']}"
        )
    for index in query(url, _PG_INDEXES):
        catalog[index["table_name"]].append(f"index {index['definition']}")
    for k in query(url, _PG_CONSTRAINTS):
        catalog[k["table_name"]].append(f"constraint {k['conname']} {k['definition']}")
    return catalog


def _normalise(sql: str) -> str:
    """SQL text without comments, line breaks and layout whitespace."""
    sql = re.sub(r"--[^\n]*", "", sql)
    sql = re.sub(r"\s+", " ", sql).strip()
    return re.sub(r"\s*([(),])\s*", r"\1", sql)
