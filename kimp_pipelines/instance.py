"""The Dagster instance kimp uses: its folder under KIMP_HOME, configured from the repo's YAML.

The instance is built from its folder (``settings.dagster_home``) with the storage given explicitly, so
nothing is written to the environment; a child process (``kimp ui`` starting ``dagster dev``) gets the
variables the YAML reads through :func:`instance_env`.

Two safety rules, applied by every ``kimp`` command that opens the instance, under one file lock
(``$KIMP_HOME/dagster/.kimp-instance.lock``) so that several commands started at once take turns:

- **Created once.** The YAML is installed atomically and the SQLite storages (runs, event-log index,
  schedules) are created and stamped by exactly one process; the others find them ready. Two processes
  creating the same SQLite database race on its schema and alembic revision (seen: two
  ``alembic_version`` rows in ``runs.db``, after which every command fails); Dagster supports several
  processes *using* one SQLite instance, as ``dagster dev`` does, not creating it together.
- **No ghost runs.** A run whose process was killed or crashed stays ``STARTED`` forever and holds a
  place in the run queue. The next command marks failed every ``STARTED`` run whose process is gone:
  the ``kimp/process`` tag (host and pid) of runs started by ``kimp``, or, on a local SQLite instance,
  the pid Dagster recorded for the run's process. A live process is never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from kimp.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

SQLITE_YAML = PROJECT_ROOT / "deploy" / "dagster.sqlite.yaml"
POSTGRES_YAML = PROJECT_ROOT / "deploy" / "dagster.postgres.yaml"
LOCK_FILE = ".kimp-instance.lock"
# Tag on every run `kimp` starts: the host and process executing it, for the sweep of dead runs.
PROCESS_TAG = "kimp/process"


def process_tag() -> dict[str, str]:
    """The tag that lets a later command tell whether this process still runs the run."""
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def postgres_dsn(settings: Settings) -> str | None:
    """KIMP_DAGSTER_PG_URL with the driver named: dagster-postgres speaks psycopg2, and SQLAlchemy would
    pick psycopg 3 for a bare postgresql:// URL, whose server-side binding breaks Dagster's NOTIFY."""
    dsn = settings.dagster_pg_url
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", dsn) if dsn else None


@contextmanager
def instance_lock(home: Path) -> Iterator[None]:
    """An exclusive lock on the instance's folder, held while it is created or swept (waits until free)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _install_yaml(settings: Settings) -> Path:
    home = settings.dagster_home
    template = (POSTGRES_YAML if settings.dagster_pg_url else SQLITE_YAML).read_text()
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != template:
        # Atomic: a process reading the instance config never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".dagster.yaml.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(template)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return home


def _instance(settings: Settings) -> DagsterInstance:
    home = settings.dagster_home
    dsn = postgres_dsn(settings)
    storage = {"postgres": {"postgres_url": dsn}} if dsn else {"sqlite": {"base_dir": str(home)}}
    ref = InstanceRef.from_dir(str(home), overrides={"storage": storage})
    return DagsterInstance.from_ref(ref)


def get_instance(settings: Settings) -> DagsterInstance:
    """The instance in ``settings.dagster_home``, ready to use: under the lock, the YAML is installed, every
    storage exists, and runs whose process is gone are marked failed. Its storage is passed in, not read from
    the environment."""
    with instance_lock(settings.dagster_home):
        _install_yaml(settings)
        instance = _instance(settings)
        # Touch every storage so that each SQLite database exists, with its schema stamped, before the lock
        # is released (runs and schedules are created with the instance, the event-log index on first use).
        instance.get_runs(limit=1)
        instance.get_asset_keys(limit=1)
        instance.all_instigator_state()
        sweep_dead_runs(instance)
    return instance


def prepare_dagster_home(settings: Settings) -> Path:
    """Make the instance in $KIMP_HOME/dagster ready for any process (SQLite by default; Postgres instance
    storage when KIMP_DAGSTER_PG_URL is set) and return its folder."""
    get_instance(settings).dispose()
    return settings.dagster_home


def instance_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that opens the same instance (e.g. ``dagster dev``)."""
    env = {**os.environ, "DAGSTER_HOME": str(prepare_dagster_home(settings))}
    dsn = postgres_dsn(settings)
    if dsn:
        env["KIMP_DAGSTER_PG_URL"] = dsn
    return env


# ------------------------------------------------------------------------------------------ dead runs


def sweep_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every STARTED run whose process is gone; returns their run ids."""
    local = _is_local_sqlite(instance)
    host = socket.gethostname()
    swept = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        tag = run.tags.get(PROCESS_TAG)
        if tag:
            run_host, _, pid_text = tag.rpartition(":")
            if run_host != host or not pid_text.isdigit():
                continue  # another machine's run (a shared Postgres instance): not ours to judge
            pids = [int(pid_text)]
        elif local:
            pids = _recorded_pids(instance, run.run_id)
        else:
            continue
        if not pids:
            continue
        started = record.start_time or record.create_timestamp.timestamp()
        if any(_alive(pid, started) for pid in pids):
            continue
        message = (
            f"kimp: the process of this run (pid {', '.join(map(str, pids))} on {host}) is gone: it was "
            "killed or crashed. Marked failed so that it no longer holds a place in the run queue; its "
            "outputs were never committed (`kimp` runs) or are the last ones its steps wrote."
        )
        instance.report_run_failed(run, message=message)
        log.warning("run %s: %s", run.run_id, message)
        swept.append(run.run_id)
    return swept


def _is_local_sqlite(instance: DagsterInstance) -> bool:
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def _recorded_pids(instance: DagsterInstance, run_id: str) -> list[int]:
    """Pids Dagster recorded for a run's processes ("Started process for run (pid: N)", in-process steps)."""
    pids = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None else None
        value = getattr(pid, "value", pid)
        if isinstance(value, int | str) and str(value).isdigit():
            pids.append(int(value))
    return sorted(set(pids))


def _alive(pid: int, since: float) -> bool:
    """Whether ``pid`` is a live process that has existed since ``since`` (epoch seconds).

    A pid that now belongs to a process started after the run (the number was reused) counts as gone, and
    so does a zombie (killed, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    started, state = _proc_start(pid)
    if state == "Z":
        return False
    return started is None or started <= since + 1.0


def _proc_start(pid: int) -> tuple[float | None, str | None]:
    """(start time as epoch seconds, state letter) from /proc (Linux); (None, None) where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, ValueError):
        return None, None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
    return boot + ticks / os.sysconf("SC_CLK_TCK"), fields[0]
