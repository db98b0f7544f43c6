"""Baselines and the ensemble: what each predicts, weights from validation only, NaN members renormalised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.models.base import DOWN, FLAT, UP, FittedModel, WalkForwardConfig
from kimp.models.baselines import fit_logistic, fit_majority, fit_persistence
from kimp.models.ensemble import EnsembleModel, combine, fit_weights
from kimp.models.labels import LAST_MOVE, label_rule, rule_config
from kimp.models.registry import get, load_model, save_model
from kimp.models.walk_forward import fit_day_ensemble
from kimp.serving.champion import label_rule_of

T0 = datetime(2024, 2, 1, tzinfo=UTC)


def _frame(n: int, seed: int = 0) -> pl.DataFrame:
    """x predicts the label linearly; last_move equals the label 70 % of the time."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    label = np.where(x < -0.45, DOWN, np.where(x > 0.45, UP, FLAT))
    flip = rng.random(n) < 0.3
    last = np.where(flip, (label + 1) % 3, label)
    split = np.array(["train"] * n, dtype=object)
    split[int(0.7 * n) :] = "validation"
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=i) for i in range(n)],
            "coin": ["BTC"] * n,
            "x": (x + 0.2 * rng.standard_normal(n)).astype(np.float32),
            "noise": rng.standard_normal(n).astype(np.float32),
            "empty": pl.Series([None] * n, dtype=pl.Float32),
            "label": pl.Series(label, dtype=pl.Int8),
            LAST_MOVE: pl.Series(np.where(np.arange(n) < 5, -1, last), dtype=pl.Int8).replace(-1, None),
            "split": split.tolist(),
        }
    )


def _first_validation_rows(frame: pl.DataFrame, n: int) -> np.ndarray:
    """The first ``n`` validation rows (like a sequence model warming up at the start of validation)."""
    return np.flatnonzero((frame["split"] == "validation").fill_null(False).to_numpy())[:n]


class _Const:
    """A fake member: constant probabilities, NaN on the first ``nan_rows`` validation rows."""

    def __init__(self, name: str, p: list[float], nan_rows: int = 0) -> None:
        self.name, self.features, self.p, self.nan_rows = name, [], np.array(p), nan_rows

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        out = np.tile(self.p, (frame.height, 1))
        out[_first_validation_rows(frame, self.nan_rows)] = np.nan
        return out

    def save(self, path: Path) -> None:  # pragma: no cover - not saved in these tests
        raise NotImplementedError


class _Oracle(_Const):
    """Knows the label (probability 0.8 on it): the ensemble must weight it most."""

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        out = np.full((frame.height, 3), 0.1)
        out[np.arange(frame.height), frame["label"].to_numpy()] = 0.8
        out[_first_validation_rows(frame, self.nan_rows)] = np.nan
        return out


def test_majority_predicts_the_training_frequencies() -> None:
    frame = _frame(300)
    model = fit_majority(frame)
    assert isinstance(model, FittedModel)
    counts = np.bincount(frame.filter(pl.col("split") == "train")["label"].to_numpy(), minlength=3)
    p = model.predict_proba(frame.head(3))
    assert p.shape == (3, 3)
    assert p[0].argmax() == counts.argmax()
    np.testing.assert_allclose(p[0], (counts + 1) / (counts.sum() + 3))


def test_persistence_repeats_the_last_move_with_its_hit_rate() -> None:
    frame = _frame(400)
    model = fit_persistence(frame)
    p = model.predict_proba(frame)
    last = frame[LAST_MOVE].to_numpy()
    known = ~np.isnan(last.astype(float))
    assert (p[known].argmax(axis=1) == last[known].astype(int)).all()
    assert 0.6 < model.hit_rate < 0.8  # the fixture's last move repeats 70 % of the time
    np.testing.assert_allclose(p[~known], np.tile(fit_majority(frame).priors, ((~known).sum(), 1)))
    with pytest.raises(ValueError, match=LAST_MOVE):
        fit_persistence(frame.drop(LAST_MOVE))


def test_logistic_learns_and_ignores_empty_columns(tmp_path: Path) -> None:
    frame = _frame(600)
    model = fit_logistic(frame, WalkForwardConfig(), features=["x", "noise", "empty"])
    valid = frame.filter(pl.col("split") == "validation")
    p = model.predict_proba(valid)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == valid["label"].to_numpy()).mean() > 0.7
    model.save(tmp_path / "logistic")
    np.testing.assert_allclose(load_model(tmp_path / "logistic").predict_proba(valid), p)


def test_logistic_keeps_three_columns_when_a_class_is_missing() -> None:
    frame = _frame(300).with_columns(label=pl.col("label").replace(UP, FLAT))
    p = fit_logistic(frame, WalkForwardConfig(), features=["x"]).predict_proba(frame)
    assert p.shape == (300, 3) and (p[:, UP] == 0).all()


class _Spy(_Const):
    """Records the splits of every frame it is asked to score."""

    def __init__(self, name: str, p: list[float]) -> None:
        super().__init__(name, p)
        self.seen: set[str | None] = set()

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        self.seen |= set(frame["split"].to_list())
        return super().predict_proba(frame)


def test_ensemble_weights_come_from_validation_and_favour_the_better_member() -> None:
    frame = _frame(300)
    test_rows = _frame(60, seed=1).with_columns(ts=pl.col("ts") + timedelta(days=1), split=pl.lit("test"))
    frame = pl.concat([frame, test_rows])
    spy = _Spy("flat", [0.3, 0.4, 0.3])
    fit = fit_day_ensemble({"oracle": _Oracle("oracle", []), "flat": spy}, frame, WalkForwardConfig())
    assert isinstance(fit.model, FittedModel)
    assert fit.model.weights["oracle"] > 0.9 and abs(sum(fit.model.weights.values()) - 1) < 1e-9
    assert fit.rows == 90 and fit.left_out == {}  # the 30% validation rows of 300
    assert "test" not in spy.seen  # never scored beyond the validation split


def test_a_member_that_scores_too_few_validation_rows_is_left_out_the_rest_share_rows() -> None:
    a = np.array([[0.2, 0.3, 0.5], [np.nan, np.nan, np.nan], [np.nan] * 3])
    b = np.array([[0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [np.nan] * 3])
    out = combine([a, b], np.array([0.5, 0.5]))
    np.testing.assert_allclose(out[0], [0.4, 0.25, 0.35])
    np.testing.assert_allclose(out[1], [0.1, 0.1, 0.8])  # only b scored: its probabilities, not half of them
    assert np.isnan(out[2]).all()
    frame = _frame(300)  # 90 validation rows
    members = {
        "warming": _Oracle("warming", [], nan_rows=10),  # a sequence model short of history: 89% scored
        "sparse": _Oracle("sparse", [], nan_rows=60),  # 33% scored: left out
        "flat": _Const("flat", [0.3, 0.4, 0.3]),
    }
    fit = fit_day_ensemble(members, frame, WalkForwardConfig(ensemble_min_coverage=0.8))
    assert set(fit.model.weights) == {"warming", "flat"} and "sparse" in fit.left_out
    assert fit.rows == 80  # every weight fitted on the rows all kept members scored
    assert fit.coverage["sparse"] == pytest.approx(30 / 90) and fit.model.weights["warming"] > 0.5
    valid = frame.filter(pl.col("split") == "validation")
    assert np.isfinite(fit.model.predict_proba(valid)).all()


def test_with_no_qualified_member_the_fallback_stands_in() -> None:
    frame = _frame(300)
    config = WalkForwardConfig()
    fit = fit_day_ensemble(
        {"sparse": _Oracle("sparse", [], nan_rows=60)},
        frame,
        config,
        fallback={"logistic": fit_logistic(frame, config, features=["x"])},
    )
    assert set(fit.model.weights) == {"logistic"} and "(fallback)" in fit.left_out


def test_the_ensemble_is_the_validated_choice_and_says_when_it_is_a_baseline(tmp_path: Path) -> None:
    frame = _frame(300)  # last_move repeats the label 70% of the time: persistence beats a constant member
    valid = frame.filter(pl.col("split") == "validation")
    config = WalkForwardConfig(horizon_minutes=120, premium_column="premium_usdt")
    persistence = get("persistence").fit_model(frame, config, features=[LAST_MOVE])  # the daily asset's fit
    baselines = {"persistence": persistence, "majority": fit_majority(frame)}
    members = {"flat": _Const("flat", [0.3, 0.4, 0.3])}
    fit = fit_day_ensemble(members, frame, config, baselines=baselines)
    assert fit.chosen == "persistence" and set(fit.choice) == {"mixture", "flat", "persistence", "majority"}
    assert fit.choice["persistence"] == max(fit.choice.values())  # never worse on validation than any
    assert "baseline persistence" in fit.note and fit.model.weights == {"persistence": 1.0}
    np.testing.assert_allclose(fit.model.predict_proba(valid), baselines["persistence"].predict_proba(valid))
    assert fit.model.class_weights == tuple(fit.class_weights["persistence"])
    fit.model.save(tmp_path / "ens")
    loaded = load_model(tmp_path / "ens")
    assert loaded.chosen == "persistence" and loaded.class_weights == fit.model.class_weights
    # the label rule its last_move was made with travels with it, for serving (kimp.serving.live)
    assert label_rule_of(loaded) == label_rule(config) and rule_config(label_rule(config)).flat_band == 0.003
    # without the choice the ensemble stays the members' mixture
    plain = fit_day_ensemble(members, frame, WalkForwardConfig(ensemble_select=False), baselines=baselines)
    assert plain.chosen == "mixture" and plain.choice == {} and set(plain.model.weights) == {"flat"}


def test_age_decay_weights_halve_per_half_life_and_are_off_by_default() -> None:
    from kimp.models.dataset import age_weights

    frame = _frame(300)  # one row a minute
    train = frame.filter(pl.col("split") == "train")
    assert age_weights(train, WalkForwardConfig()) is None
    half_day = 100 / 1440  # a half-life of 100 minutes
    w = age_weights(train, WalkForwardConfig(sample_half_life_days=half_day))
    assert w is not None and w[-1] == 1.0 and w[-101] == pytest.approx(0.5) and (np.diff(w) > 0).all()
    with pytest.raises(ValueError, match="sample_half_life_days"):
        WalkForwardConfig(sample_half_life_days=0)
    # the logistic baseline fits with them (and differs from the unweighted fit)
    decayed = fit_logistic(frame, WalkForwardConfig(sample_half_life_days=half_day), features=["x"])
    plain = fit_logistic(frame, WalkForwardConfig(), features=["x"])
    assert not np.allclose(decayed.predict_proba(frame), plain.predict_proba(frame))


def test_fit_weights_is_on_the_simplex() -> None:
    rng = np.random.default_rng(3)
    probas = [rng.dirichlet([1, 1, 1], size=200) for _ in range(3)]
    w = fit_weights(probas, rng.integers(0, 3, size=200))
    assert (w >= 0).all() and abs(w.sum() - 1) < 1e-9


def test_ensemble_saves_and_loads_its_members(tmp_path: Path) -> None:
    frame = _frame(300)
    valid = frame.filter(pl.col("split") == "validation")
    config = WalkForwardConfig()
    members = {
        "logistic": fit_logistic(frame, config, features=["x"]),
        "majority": fit_majority(frame),
    }
    model = fit_day_ensemble(members, frame, config).model
    for name, member in members.items():
        save_model(name, member, tmp_path / name)
        np.testing.assert_allclose(
            load_model(tmp_path / name).predict_proba(valid), member.predict_proba(valid)
        )
    model.save(tmp_path / "ens")
    loaded = load_model(tmp_path / "ens")
    assert isinstance(loaded, EnsembleModel) and loaded.weights == model.weights
    np.testing.assert_allclose(loaded.predict_proba(valid), model.predict_proba(valid))


def test_registry_reads_the_lstm_format_through_its_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    seen: list[Path] = []
    fake = types.ModuleType("kimp.models.sequence")
    fake.load_lstm = lambda path: seen.append(path) or _Const("lstm", [0.2, 0.3, 0.5])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kimp.models.sequence", fake)
    (tmp_path / "lstm").mkdir()
    (tmp_path / "lstm" / "lstm_config.json").write_text("{}")
    assert load_model(tmp_path / "lstm").name == "lstm" and seen == [tmp_path / "lstm"]
    with pytest.raises(FileNotFoundError, match=r"model\.json"):
        load_model(tmp_path)
