"""The Dagster instance kimp uses: DAGSTER_HOME under KIMP_HOME, configured from the repo's YAML."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dagster import DagsterInstance

from kimp.settings import PROJECT_ROOT, Settings

SQLITE_YAML = PROJECT_ROOT / "deploy" / "dagster.sqlite.yaml"
POSTGRES_YAML = PROJECT_ROOT / "deploy" / "dagster.postgres.yaml"


def prepare_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at $KIMP_HOME/dagster (unless already set) and install the instance YAML.

    SQLite by default; Postgres instance storage when KIMP_DAGSTER_PG_URL is set.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    dsn = os.environ.get("KIMP_DAGSTER_PG_URL")
    if dsn:
        # dagster-postgres speaks psycopg2; SQLAlchemy would pick psycopg 3 for a bare postgresql:// URL,
        # whose server-side binding breaks Dagster's NOTIFY. Name the driver (this process and children).
        os.environ["KIMP_DAGSTER_PG_URL"] = re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", dsn)
    template = POSTGRES_YAML if dsn else SQLITE_YAML
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != template.read_text():
        shutil.copyfile(template, target)
    return home


def get_instance(settings: Settings) -> DagsterInstance:
    prepare_dagster_home(settings)
    return DagsterInstance.get()
