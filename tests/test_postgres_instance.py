"""With KIMP_DAGSTER_PG_URL set, the Dagster instance stores runs in Postgres (a throwaway local cluster)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

INITDB, PG_CTL = shutil.which("initdb"), shutil.which("pg_ctl")
pytestmark = pytest.mark.skipif(
    not (INITDB and PG_CTL), reason="PostgreSQL server binaries (initdb, pg_ctl) not installed"
)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="kimp-pg-"))
    base.chmod(0o777)  # the server runs as the 'postgres' user when the tests run as root
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(
        [*as_user, INITDB, "-D", str(data), "-U", "kimp", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_user, PG_CTL, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://kimp@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, PG_CTL, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_runs_are_stored_in_postgres(
    kimp_env: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from kimp_pipelines.cli import main

    monkeypatch.setenv("KIMP_DAGSTER_PG_URL", postgres_url)
    result = CliRunner().invoke(
        main, ["materialize", "--start", "2024-01-05", "--end", "2024-01-05", "--select", "fx_usdkrw"]
    )
    assert result.exit_code == 0, result.output
    assert "postgres_url" in (kimp_env / "dagster" / "dagster.yaml").read_text()
    with psycopg.connect(postgres_url) as conn:
        runs = conn.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").fetchone()
    assert runs is not None and runs[0] == 1
