"""Point-in-time retrieval from the offline store: feature values as they were known at given times.

The stored ``features`` table (``{base}/features/{YYYY-MM-DD}.parquet``, frames from build_features)
holds one row per (coin, bar). A row becomes known at its bar close ``ts + interval_s``. For each request
(coin, time T) DuckDB's ASOF JOIN picks the latest row of that coin with ``ts + interval_s <= T``, so a
model trained on the result never sees a value before it existed. The matched row's ``ts`` comes back as
``feature_ts`` and its close as ``known_at``; requests older than every stored row get nulls.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl

from kimp.storage.parquet_store import ParquetStore

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def point_in_time(
    store_uri: str,
    requests: pl.DataFrame,
    *,
    features: list[str] | None = None,
    table: str = "features",
    max_staleness_s: int | None = None,
) -> pl.DataFrame:
    """For each request row (``ts``: the time of the question, ``coin``), the features known then.

    Returns the request columns (in request order) plus ``feature_ts``, ``known_at`` and the features.
    ``max_staleness_s``: a match whose ``known_at`` is older than this before the request is nulled
    (e.g. the store has a gap); None keeps any earlier row.
    """
    for col in ("ts", "coin"):
        if col not in requests.columns:
            raise ValueError(f"point_in_time: requests need columns ts and coin; have {requests.columns}")
    if not _IDENT.match(table):
        raise ValueError(f"point_in_time: table name {table!r} is not a plain identifier")
    store = ParquetStore(store_uri)
    partitions = store.partitions(table)
    if not partitions:
        raise FileNotFoundError(f"point_in_time: table {table!r} has no partitions under {store_uri}")
    pattern = f"{store.table_dir(table)}/*.parquet"
    if not store.is_local:
        pattern = f"{store.scheme}://{pattern}"
    con = duckdb.connect(":memory:")
    try:
        if not store.is_local:
            con.register_filesystem(store.fs)
        con.execute(f"CREATE VIEW stored AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)")
        available = [r[0] for r in con.execute("DESCRIBE stored").fetchall()]
        wanted = (
            features
            if features is not None
            else [c for c in available if c not in ("ts", "coin", "interval_s")]
        )
        unknown = [f for f in wanted if f not in available]
        if unknown:
            raise ValueError(f"point_in_time: features {unknown[:5]} are not in the stored {table!r} table")
        req = requests.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_req_id"),
            pl.col("ts").cast(pl.Datetime("us", "UTC")).alias("_req_ts"),
            pl.col("coin").cast(pl.String).alias("_req_coin"),
        )
        con.register("req", req.to_arrow())
        cols = ", ".join(f"s.{_quote(f)}" for f in wanted)
        # the ASOF inequality matches on knowledge time, never on bar open time
        query = f"""
            WITH s AS (
                SELECT *, ts + to_seconds(CAST(interval_s AS BIGINT)) AS known_at FROM stored
            )
            SELECT r._req_id, s.ts AS feature_ts, s.known_at{", " + cols if cols else ""}
            FROM req r ASOF LEFT JOIN s ON r._req_coin = s.coin AND r._req_ts >= s.known_at
        """
        matched = pl.from_arrow(con.sql(query).to_arrow_table())
    finally:
        con.close()
    assert isinstance(matched, pl.DataFrame)
    matched = matched.with_columns(
        pl.col("feature_ts").cast(pl.Datetime("us", "UTC")), pl.col("known_at").cast(pl.Datetime("us", "UTC"))
    )
    if max_staleness_s is not None:
        too_old = pl.col("known_at") < pl.col("_req_ts") - pl.duration(seconds=max_staleness_s)
        matched = (
            matched.join(req.select("_req_id", "_req_ts"), on="_req_id")
            .with_columns(
                pl.when(~too_old).then(pl.col(c)).alias(c) for c in ["feature_ts", "known_at", *wanted]
            )
            .drop("_req_ts")
        )
    out = requests.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_req_id"))
    return out.join(matched, on="_req_id", how="left").sort("_req_id").drop("_req_id")
