"""The Dagster instance kimp uses: its folder under KIMP_HOME, configured from the repo's YAML.

The instance is built from its folder (``settings.dagster_home``) with the storage given explicitly, so
nothing is written to the environment; a child process (``kimp ui`` starting ``dagster dev``) gets the
variables the YAML reads through :func:`instance_env`.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from kimp.settings import PROJECT_ROOT, Settings

SQLITE_YAML = PROJECT_ROOT / "deploy" / "dagster.sqlite.yaml"
POSTGRES_YAML = PROJECT_ROOT / "deploy" / "dagster.postgres.yaml"


def postgres_dsn(settings: Settings) -> str | None:
    """KIMP_DAGSTER_PG_URL with the driver named: dagster-postgres speaks psycopg2, and SQLAlchemy would
    pick psycopg 3 for a bare postgresql:// URL, whose server-side binding breaks Dagster's NOTIFY."""
    dsn = settings.dagster_pg_url
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", dsn) if dsn else None


def prepare_dagster_home(settings: Settings) -> Path:
    """Create $KIMP_HOME/dagster and install the instance YAML there (SQLite by default; Postgres
    instance storage when KIMP_DAGSTER_PG_URL is set)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = POSTGRES_YAML if settings.dagster_pg_url else SQLITE_YAML
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != template.read_text():
        shutil.copyfile(template, target)
    return home


def instance_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that opens the same instance (e.g. ``dagster dev``)."""
    env = {**os.environ, "DAGSTER_HOME": str(prepare_dagster_home(settings))}
    dsn = postgres_dsn(settings)
    if dsn:
        env["KIMP_DAGSTER_PG_URL"] = dsn
    return env


def get_instance(settings: Settings) -> DagsterInstance:
    """The instance in ``settings.dagster_home``; its storage is passed in, not read from the environment."""
    home = prepare_dagster_home(settings)
    dsn = postgres_dsn(settings)
    storage = {"postgres": {"postgres_url": dsn}} if dsn else {"sqlite": {"base_dir": str(home)}}
    ref = InstanceRef.from_dir(str(home), overrides={"storage": storage})
    return DagsterInstance.from_ref(ref)
