"""Which Optuna study a daily retrain may use: the newest one tuned on data from before its own day.

Studies are named ``kimp-{kind}-h{horizon}-{day}``, where ``day`` is the partition whose training window
the study searched. A retrain of day D uses the newest study with ``day <= D``: that study's window ended
before ``day - embargo <= D - embargo``, so tuning never saw the days a model predicts.
"""

from __future__ import annotations

from datetime import date

from kimp.models.base import WalkForwardConfig


def study_name(kind: str, day: date, config: WalkForwardConfig) -> str:
    return f"kimp-{kind}-h{config.horizon_minutes}-{day.isoformat()}"


def _study_days(storage_url: str, kind: str, config: WalkForwardConfig) -> dict[date, str]:
    import optuna

    prefix = f"kimp-{kind}-h{config.horizon_minutes}-"
    try:
        names = optuna.study.get_all_study_names(storage=storage_url)
    except Exception:  # no storage yet (fresh home): no study
        return {}
    out: dict[date, str] = {}
    for name in names:
        if name.startswith(prefix):
            try:
                out[date.fromisoformat(name.removeprefix(prefix))] = name
            except ValueError:
                continue
    return out


def latest_study(storage_url: str, kind: str, day: date, config: WalkForwardConfig) -> str | None:
    """Name of the newest study of ``kind`` tuned for a day on or before ``day``, or None."""
    usable = {d: n for d, n in _study_days(storage_url, kind, config).items() if d <= day}
    return usable[max(usable)] if usable else None


def tunable_models(config: WalkForwardConfig) -> list[str]:
    """The configured members that have a search space (kimp.models.registry)."""
    from kimp.models import registry

    return [s.name for s in registry.members(config.models) if s.tunable]


def latest_study_day(storage_url: str, day: date, config: WalkForwardConfig) -> date | None:
    """The newest day on or before ``day`` for which every configured tunable model has a study."""
    kinds = tunable_models(config)
    if not kinds:
        return day  # nothing to tune
    per_kind = [{d for d in _study_days(storage_url, k, config) if d <= day} for k in kinds]
    common = set.intersection(*per_kind) if per_kind else set()
    return max(common) if common else None
