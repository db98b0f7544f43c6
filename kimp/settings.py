"""Settings from the environment, validated in one place.

KIMP_HOME            every piece of local state (Parquet store, DAGSTER_HOME, later MLflow); default .kimp/
KIMP_SOURCE          simulated (default) | files | exchange
KIMP_DATA_DIR        folder of real files for the files source (and the FX file for exchange)
KIMP_STORAGE_URI     base URI of the Parquet store (default $KIMP_HOME/store; s3://bucket/prefix works)
KIMP_START_DATE      first daily partition (default 2017-08-17, the start of the real hourly samples)
KIMP_SEED            simulator seed (default 7)
KIMP_ORDERBOOK_MS    simulated order-book snapshot interval in ms (default 5000, down to 100)
KIMP_MAX_GAP_MINUTES gap threshold of the blocking 'gaps' checks (default 360)
KIMP_MAX_FX_AGE_HOURS freshness limit of USD/KRW for the premium (default 120)
KIMP_MLFLOW_URI      MLflow tracking URI (default sqlite:///$KIMP_HOME/mlflow.db; any MLflow server works)
KIMP_OPTUNA_STORAGE  Optuna RDB storage URL (default sqlite:///$KIMP_HOME/optuna.db; share a Postgres URL
                     so several workers tune one study)
KIMP_WF_HORIZON_MINUTES  prediction horizon (default 60; 60..1440)
KIMP_WF_WINDOW_DAYS  training window of each daily model (default 30)
KIMP_WF_TRIALS       Optuna trials per tuning study (default 20)
KIMP_WF_MODELS       models trained each day (default xgboost,lightgbm,lstm)
KIMP_WF_LSTM_SIZE    cpu (default, sized for 2 cores) | prd (the PRD's full LSTM)
KIMP_WF_KR_VENUE     Korean venue whose premium is predicted: upbit (default) | bithumb (the 2017-2019 samples)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kimp.models.base import WalkForwardConfig

SOURCES = ("simulated", "files", "exchange")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    home: Path
    source: str
    data_dir: str | None
    storage_uri: str
    start_date: date
    seed: int
    orderbook_interval_ms: int
    max_gap_minutes: int
    max_fx_age_hours: int
    mlflow_uri: str = ""
    optuna_storage: str = ""
    wf_horizon_minutes: int = 60
    wf_window_days: int = 30
    wf_trials: int = 20
    wf_models: tuple[str, ...] = ("xgboost", "lightgbm", "lstm")
    wf_lstm_size: str = "cpu"
    wf_kr_venue: str = "upbit"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def model_dir(self) -> Path:
        """Daily model files (also logged to MLflow); local because models are loaded by path."""
        return self.home / "models"

    def walk_forward(self) -> WalkForwardConfig:
        """The validated walk-forward config these settings describe."""
        from kimp.models.base import WalkForwardConfig

        return WalkForwardConfig(
            horizon_minutes=self.wf_horizon_minutes,
            window_days=self.wf_window_days,
            n_trials=self.wf_trials,
            models=self.wf_models,
            lstm_size=self.wf_lstm_size,
            kr_venue=self.wf_kr_venue,
            seed=self.seed,
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("KIMP_HOME") or PROJECT_ROOT / ".kimp").expanduser().resolve()
        source = env.get("KIMP_SOURCE", "simulated").strip().lower()
        if source not in SOURCES:
            raise ValueError(f"KIMP_SOURCE={source!r}: expected one of {', '.join(SOURCES)}")
        data_dir = env.get("KIMP_DATA_DIR") or None
        if source == "files" and not data_dir:
            raise ValueError(
                "KIMP_SOURCE=files needs KIMP_DATA_DIR (the folder holding the candle and FX files)"
            )
        if data_dir and "://" not in data_dir:
            data_dir = str(Path(data_dir).expanduser().resolve())
        storage = env.get("KIMP_STORAGE_URI") or str(home / "store")
        ob_ms = _int(env, "KIMP_ORDERBOOK_MS", 5_000)
        if not 100 <= ob_ms <= 3_600_000 or 86_400_000 % ob_ms:
            raise ValueError(
                f"KIMP_ORDERBOOK_MS={ob_ms}: expected 100 .. 3,600,000 milliseconds that divide a day evenly "
                "(e.g. 100, 250, 500, 1000, 5000, 60000)"
            )
        return cls(
            home=home,
            source=source,
            data_dir=data_dir,
            storage_uri=storage,
            start_date=_date(env, "KIMP_START_DATE", "2017-08-17"),
            seed=_int(env, "KIMP_SEED", 7),
            orderbook_interval_ms=ob_ms,
            max_gap_minutes=_int(env, "KIMP_MAX_GAP_MINUTES", 360),
            max_fx_age_hours=_int(env, "KIMP_MAX_FX_AGE_HOURS", 120),
            mlflow_uri=env.get("KIMP_MLFLOW_URI") or f"sqlite:///{home / 'mlflow.db'}",
            optuna_storage=env.get("KIMP_OPTUNA_STORAGE") or f"sqlite:///{home / 'optuna.db'}",
            wf_horizon_minutes=_int(env, "KIMP_WF_HORIZON_MINUTES", 60),
            wf_window_days=_int(env, "KIMP_WF_WINDOW_DAYS", 30),
            wf_trials=_int(env, "KIMP_WF_TRIALS", 20),
            wf_models=_models(env.get("KIMP_WF_MODELS") or "xgboost,lightgbm,lstm"),
            wf_lstm_size=(env.get("KIMP_WF_LSTM_SIZE") or "cpu").strip().lower(),
            wf_kr_venue=_choice(env, "KIMP_WF_KR_VENUE", "upbit", ("upbit", "bithumb")),
        )


MODELS = ("xgboost", "lightgbm", "lstm")


def _choice(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _models(raw: str) -> tuple[str, ...]:
    names = tuple(m.strip().lower() for m in raw.split(",") if m.strip())
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        raise ValueError(f"KIMP_WF_MODELS={raw!r}: expected a comma-separated subset of {', '.join(MODELS)}")
    return names


def _date(env: dict[str, str], name: str, default: str) -> date:
    raw = env.get(name) or default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a date as YYYY-MM-DD") from None


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None
