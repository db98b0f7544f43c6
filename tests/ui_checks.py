"""How the Dagster UI receives metadata: each value rendered through dagster-graphql as the webserver
sends it, and parsed back as strictly as the browser's JSON.parse does (no NaN, no Infinity)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dagster import MetadataValue

_MARKDOWN_TABLE = re.compile(r"^\s*\|?\s*:?-{3,}", re.MULTILINE)


def _reject(token: str) -> Any:
    raise ValueError(f"{token} is not JSON: the UI's JSON.parse fails on it")


def parse_strict(text: str) -> Any:
    return json.loads(text, parse_constant=_reject)


def rendered_tables(metadata: Mapping[str, MetadataValue | Any]) -> dict[str, list[dict[str, Any]]]:
    """Every table entry of ``metadata`` as the UI parses it (label -> records). Asserts that each record
    parses strictly and names only columns of the table's schema, and that no Markdown entry holds a
    table (polars' Markdown tables wrap in the UI: tables go as table metadata)."""
    from dagster._core.definitions.metadata import normalize_metadata
    from dagster_graphql.implementation.events import iterate_metadata_entries

    tables: dict[str, list[dict[str, Any]]] = {}
    for entry in iterate_metadata_entries(normalize_metadata(dict(metadata))):
        if hasattr(entry, "table") and hasattr(entry.table, "records"):
            columns = [c.name for c in entry.table.schema.columns]
            records = [parse_strict(r) for r in entry.table.records]
            for record in records:
                assert set(record) <= set(columns), (entry.label, set(record) - set(columns))
            tables[entry.label] = records
        elif hasattr(entry, "md_str"):
            assert not _MARKDOWN_TABLE.search(entry.md_str), f"{entry.label}: a Markdown table"
        elif hasattr(entry, "jsonString"):
            parse_strict(entry.jsonString)
    return tables
