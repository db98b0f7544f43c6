"""The embedded instance survives concurrent first use, and runs whose process was killed are marked failed.

Concurrent first use: several processes open a fresh KIMP_HOME at the same moment (released together by a
barrier), repeatedly; then the instance must be healthy: every SQLite database stamped exactly as a single
process stamps it (before the lock, 1 try in 4 left two ``alembic_version`` rows in runs.db, after which
every command failed), and usable. One round uses real ``kimp materialize`` commands.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterRunStatus, RunsFilter

from kimp.settings import Settings
from kimp_pipelines.cli import main
from kimp_pipelines.instance import get_instance

DATABASES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
# The children start at once, without re-importing Dagster; they use only Dagster and SQLite (a fork
# does not carry polars' thread pool safely).
FORK = multiprocessing.get_context("fork")


def _stamps(dagster_home: Path) -> dict[str, list[str]]:
    out = {}
    for name in DATABASES:
        with sqlite3.connect(dagster_home / name) as con:
            out[name] = sorted(r[0] for r in con.execute("SELECT version_num FROM alembic_version"))
    return out


@pytest.fixture(scope="module")
def reference_stamps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """What one process alone creates."""
    home = tmp_path_factory.mktemp("reference")
    get_instance(Settings(home=home)).dispose()
    stamps = _stamps(home / "dagster")
    assert all(len(v) == 1 for v in stamps.values()), stamps
    return stamps


def _first_use(home: str, barrier: object, day: int) -> None:
    """Child: open the instance the moment every sibling is ready, then record a run in it."""
    try:
        barrier.wait(timeout=120)  # type: ignore[attr-defined]
        instance = get_instance(Settings(home=Path(home)))
        from dagster import DagsterRun

        instance.add_run(DagsterRun(job_name=f"concurrent_{day}", run_id=f"{os.getpid():08d}-{day}"))
        instance.dispose()
    except BaseException as exc:  # the parent reads the exit code
        print(f"child {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        os._exit(1)
    os._exit(0)


def _healthy(dagster_home: Path, reference: dict[str, list[str]], runs: int) -> None:
    assert _stamps(dagster_home) == reference
    instance = get_instance(Settings(home=dagster_home.parent))
    assert len(instance.get_runs()) == runs
    instance.get_asset_keys()
    instance.all_instigator_state()
    instance.dispose()


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_first_use_leaves_a_healthy_instance(
    tmp_path: Path, reference_stamps: dict, attempt: int
) -> None:
    n = 3
    barrier = FORK.Barrier(n)
    children = [FORK.Process(target=_first_use, args=(str(tmp_path), barrier, i)) for i in range(n)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
    assert [c.exitcode for c in children] == [0] * n
    _healthy(tmp_path / "dagster", reference_stamps, runs=n)


@pytest.mark.slow
def test_concurrent_kimp_commands_on_a_fresh_home(tmp_path: Path, reference_stamps: dict) -> None:
    """Three `kimp materialize` commands of the same day started together on a fresh KIMP_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIMP_") and k != "DAGSTER_HOME"}
    env |= {"KIMP_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    kimp = Path(sys.executable).parent / "kimp"
    args = [str(kimp), "materialize", "--start", "2024-03-04", "--end", "2024-03-04", "--select", "fx_usdkrw"]
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)
    ]
    outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    _healthy(tmp_path / "dagster", reference_stamps, runs=3)
    assert (tmp_path / "store" / "fx_usdkrw" / "2024-03-04.parquet").exists()


FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
DAY = "2018-01-10"


# A separate interpreter (not a fork: polars' thread pool does not survive fork) running `kimp materialize`
# of one day whose Bithumb candles never arrive (the source hangs).
HANGING_RUN = """
import sys, time
from kimp.market_data.files import FilesSource
candles = FilesSource.candles
def hang_on_bithumb(self, venue, day):
    if venue == "bithumb":
        time.sleep(3600)
    return candles(self, venue, day)
FilesSource.candles = hang_on_bithumb
from kimp_pipelines.cli import main
main(["materialize", "--start", sys.argv[1], "--end", sys.argv[1], "--select", "key:*_candles"])
"""


def test_a_killed_run_is_marked_failed_by_the_next_command(
    kimp_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIMP_SOURCE", "files")
    monkeypatch.setenv("KIMP_DATA_DIR", str(FIXTURE))
    child = subprocess.Popen([sys.executable, "-c", HANGING_RUN, DAY], stderr=subprocess.DEVNULL)
    store = kimp_env / "store"
    deadline = time.monotonic() + 500
    # wait until the run is under way: STARTED, Binance's candles staged, Bithumb's hanging
    while not list(store.glob(".staging/*/*/*.parquet")):
        assert child.poll() is None and time.monotonic() < deadline, "the run never got under way"
        time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    dagster_home = str(kimp_env / "dagster")  # opened without kimp's sweep: the ghost is there
    storage = {"sqlite": {"base_dir": dagster_home}}
    raw = DagsterInstance.from_ref(InstanceRef.from_dir(dagster_home, overrides={"storage": storage}))
    (ghost,) = raw.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))  # left behind by the kill
    raw.dispose()

    result = CliRunner().invoke(main, ["materialize", "--start", DAY, "--end", DAY, "--select", "fx_usdkrw"])
    assert result.exit_code == 0, result.output
    instance = get_instance(Settings.from_env())
    run = instance.get_run_by_id(ghost.run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    failure = instance.all_logs(ghost.run_id)[-1]
    assert "is gone: it was killed or crashed" in (failure.message or "")
    assert not list(store.glob(".staging/*")), "the killed run's staged outputs are dropped"
    assert not list(store.glob("*_candles/*.parquet"))  # nothing of the killed run was committed
    assert instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])) == []
