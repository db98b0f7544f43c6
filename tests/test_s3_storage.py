"""The Parquet store, the IO path and `kimp sql` on s3:// (through s3fs), against a local S3 API.

moto's server speaks the S3 protocol on a loopback port; nothing leaves the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import polars as pl
import pytest

from kimp.storage import ParquetStore
from kimp.storage.sql import query_csv


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="kimp-test")
    return "s3://kimp-test/store"


def test_s3_round_trip_overwrite_and_sql(s3_env: str) -> None:
    store = ParquetStore(s3_env)
    assert not store.is_local and store.scheme == "s3"
    store.write("kimchi_premium", "2024-01-01", pl.DataFrame({"coin": ["BTC"], "premium_fx": [0.01]}))
    store.write("kimchi_premium", "2024-01-02", pl.DataFrame({"coin": ["ETH"], "premium_fx": [0.03]}))
    store.write(
        "kimchi_premium", "2024-01-02", pl.DataFrame({"coin": ["ETH", "BTC"], "premium_fx": [0.02, 0.04]})
    )
    assert store.partitions("kimchi_premium") == ["2024-01-01", "2024-01-02"]
    assert store.read("kimchi_premium", "2024-01-02")["premium_fx"].to_list() == [0.02, 0.04]
    assert store.tables() == ["kimchi_premium"]
    out = query_csv(
        ParquetStore(s3_env), "SELECT count(*) AS n, round(sum(premium_fx), 2) AS s FROM kimchi_premium"
    )
    assert out == "n,s\n3,0.07\n"


def test_io_manager_on_s3(s3_env: str) -> None:
    from dagster import DagsterInstance, materialize

    from kimp.settings import Settings
    from kimp_pipelines.assets import build_market_assets
    from kimp_pipelines.partitions import Partitions
    from kimp_pipelines.resources import build_resources

    settings = Settings(storage_uri=s3_env)
    result = materialize(
        build_market_assets(Partitions.from_settings(settings)),
        partition_key="2024-03-04",
        selection="fx_usdkrw",
        resources=build_resources(settings),
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    assert ParquetStore(s3_env).read("fx_usdkrw", "2024-03-04").height == 1441
