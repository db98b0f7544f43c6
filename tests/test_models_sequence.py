"""LSTM-with-attention direction model: windows, look-ahead, determinism, learning, persistence, stopping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from kimp.models.base import FittedModel, WalkForwardConfig
from kimp.models.sequence import (
    PRESETS,
    AttentionLSTMNet,
    LSTMModel,
    auto_batch_size,
    class_weights,
    fit_lstm,
    load_lstm,
    sizes_for,
)
from kimp.models.sequence_data import ModelInputError, Scaler, full_window_mask, order_rows

FEATURES = ["f0", "f1", "f2"]
# One thread: tiny networks gain nothing from two, and the tests must stay fast on a busy shared machine.
TINY = {
    "steps": 6,
    "lstm1": 16,
    "lstm2": 8,
    "heads": 2,
    "dense": 16,
    "lr": 0.01,
    "max_epochs": 12,
    "threads": 1,
}
START = datetime(2024, 1, 1, tzinfo=UTC)


def tiny_config(seed: int = 7, **overrides: object) -> WalkForwardConfig:
    return WalkForwardConfig(seed=seed, model_params={"lstm": {**TINY, **overrides}})


def synthetic_frame(
    n_per_coin: int = 900, seed: int = 0, coins: tuple[str, ...] = ("BTC", "ETH")
) -> pl.DataFrame:
    """1-minute bars per coin; the label is the sign of f0 summed over the last 3 bars (inclusive), so it is
    learnable from the window but not from any single bar. Split by time: 60% train, 20% validation, 20% test."""
    rng = np.random.default_rng(seed)
    parts = []
    for coin in coins:
        x = rng.normal(size=(n_per_coin, len(FEATURES))).astype(np.float32)
        s = x[:, 0].copy()
        s[1:] += x[:-1, 0]
        s[2:] += x[:-2, 0]
        label = np.where(s > 1.0, 2, np.where(s < -1.0, 0, 1)).astype(np.int8)
        split = np.array(["train"] * n_per_coin, dtype=object)
        split[int(0.6 * n_per_coin) : int(0.8 * n_per_coin)] = "validation"
        split[int(0.8 * n_per_coin) :] = "test"
        parts.append(
            pl.DataFrame(
                {
                    "ts": [START + timedelta(minutes=i) for i in range(n_per_coin)],
                    "coin": [coin] * n_per_coin,
                    **{name: x[:, j] for j, name in enumerate(FEATURES)},
                    "label": pl.Series(label, dtype=pl.Int8),
                    "split": split.tolist(),
                }
            ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        )
    return pl.concat(parts)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return synthetic_frame()


@pytest.fixture(scope="module")
def model(frame: pl.DataFrame) -> LSTMModel:
    return fit_lstm(frame, tiny_config(), features=FEATURES)


def test_window_mask_restarts_at_gaps_and_coins() -> None:
    ts = [START + timedelta(minutes=m) for m in (0, 1, 2, 3, 5, 6, 7, 8)] + [
        START + timedelta(minutes=m) for m in (0, 1)
    ]
    coins = ["A"] * 8 + ["B"] * 2
    frame = pl.DataFrame({"ts": ts, "coin": coins}).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    rows = order_rows(frame.reverse(), model="t", required=[])
    mask = full_window_mask(rows, steps=3, bar_seconds=60)
    # A: 0,1,2,3 | gap | 5,6,7,8 -> windows end at 2,3 and 7,8; B is too short.
    assert mask.tolist() == [False, False, True, True, False, False, True, True, False, False]
    assert rows.original_row.tolist() == list(range(9, -1, -1))


def test_predict_shapes_nan_rows_and_row_order(model: LSTMModel, frame: pl.DataFrame) -> None:
    assert isinstance(model, FittedModel) and model.name == "lstm" and model.features == FEATURES
    sample = frame.filter(pl.col("coin") == "BTC").head(20)
    sample = sample.filter(pl.col("ts") != START + timedelta(minutes=12))  # a gap: rows 12.. restart
    short = frame.filter(pl.col("coin") == "ETH").head(4)  # never enough history
    test = pl.concat([sample, short])
    proba = model.predict_proba(test)
    assert proba.shape == (test.height, 3)
    minute = test.get_column("ts").dt.minute().to_numpy()
    is_btc = (test.get_column("coin") == "BTC").to_numpy()
    expected_scored = is_btc & (((minute >= 5) & (minute < 12)) | (minute >= 18))
    assert (~np.isnan(proba).any(axis=1)).tolist() == expected_scored.tolist()
    assert np.isnan(proba[~expected_scored]).all()
    np.testing.assert_allclose(proba[expected_scored].sum(axis=1), 1.0, atol=1e-6)
    # shuffled input -> the same probabilities, in the shuffled order
    perm = np.random.default_rng(3).permutation(test.height)
    np.testing.assert_array_equal(model.predict_proba(test[perm]), proba[perm])


def test_no_look_ahead(model: LSTMModel, frame: pl.DataFrame) -> None:
    full = model.predict_proba(frame)
    cut = START + timedelta(minutes=500)
    past = (frame.get_column("ts") <= cut).to_numpy()
    noise = np.random.default_rng(1).normal(size=frame.height).astype(np.float32) * 10
    altered = frame.with_columns(
        pl.when(pl.col("ts") > cut).then(pl.Series(noise)).otherwise(pl.col(c)).alias(c) for c in FEATURES
    )
    changed = model.predict_proba(altered)
    np.testing.assert_array_equal(changed[past], full[past])
    assert not np.allclose(changed[~past], full[~past])  # the alteration did reach the model
    truncated = model.predict_proba(frame.filter(pl.col("ts") <= cut))
    np.testing.assert_allclose(truncated, full[past], rtol=0, atol=1e-6)


def test_same_seed_same_predictions_and_caller_rng_untouched(model: LSTMModel, frame: pl.DataFrame) -> None:
    rng_before = torch.get_rng_state()
    np_before = np.random.get_state()[1].copy()
    again = fit_lstm(frame, tiny_config(), features=FEATURES)
    assert torch.equal(torch.get_rng_state(), rng_before)
    np.testing.assert_array_equal(np.random.get_state()[1], np_before)
    np.testing.assert_array_equal(again.predict_proba(frame), model.predict_proba(frame))
    assert again.history.train_loss == model.history.train_loss
    seed7, seed8 = (fit_lstm(frame, tiny_config(seed=s), features=FEATURES, max_epochs=1) for s in (7, 8))
    assert not np.allclose(seed7.predict_proba(frame), seed8.predict_proba(frame), equal_nan=True)


def test_learns_window_pattern_above_chance(model: LSTMModel, frame: pl.DataFrame) -> None:
    proba = model.predict_proba(frame)
    test = (frame.get_column("split") == "test").to_numpy() & ~np.isnan(proba).any(axis=1)
    truth = frame.get_column("label").to_numpy()[test]
    accuracy = float((proba[test].argmax(axis=1) == truth).mean())
    majority = float(np.bincount(truth).max() / truth.size)
    assert accuracy > max(0.7, majority + 0.2), (accuracy, majority, model.history.val_accuracy)
    assert model.history.train_loss[-1] < model.history.train_loss[0]


def test_test_rows_are_never_used_for_training(model: LSTMModel, frame: pl.DataFrame) -> None:
    is_test = pl.col("split") == "test"
    scrambled = frame.with_columns(
        pl.when(is_test)
        .then((pl.col("label") + 1) % 3)
        .otherwise(pl.col("label"))
        .cast(pl.Int8)
        .alias("label"),
        *(pl.when(is_test).then(pl.lit(99.0)).otherwise(pl.col(c)).alias(c) for c in FEATURES),
    )
    again = fit_lstm(scrambled, tiny_config(), features=FEATURES)
    np.testing.assert_array_equal(again.predict_proba(frame), model.predict_proba(frame))


def test_scaler_from_train_rows_and_missing_values_become_zero(frame: pl.DataFrame) -> None:
    holed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("f1")).alias("f1"),
        pl.when(pl.col("split") != "train").then(pl.col("f2") + 50.0).otherwise(pl.col("f2")).alias("f2"),
    )
    fitted = fit_lstm(holed, tiny_config(max_epochs=1), features=FEATURES)
    train = holed.filter(pl.col("split") == "train")
    for j, name in enumerate(FEATURES):
        values = train.get_column(name).drop_nulls().to_numpy().astype(np.float64)
        assert fitted.scaler.mean[j] == pytest.approx(values.mean(), abs=1e-9)
        assert fitted.scaler.std[j] == pytest.approx(values.std(ddof=1), rel=1e-9)
    z = Scaler(mean=np.array([1.0, 2.0]), std=np.array([2.0, 1.0])).transform(
        np.array([[3.0, np.nan]], np.float32)
    )
    assert z.tolist() == [[1.0, 0.0]]


def test_rows_without_split_are_history_only(frame: pl.DataFrame) -> None:
    first_ten = pl.int_range(pl.len()).over("coin") < 10
    history = frame.with_columns(pl.when(first_ten).then(None).otherwise(pl.col("split")).alias("split"))
    fitted = fit_lstm(history, tiny_config(max_epochs=1), features=FEATURES)
    # train rows 10..539 per coin all have a full window (rows 5.. would, but 0..9 are not samples)
    assert fitted.history.n_train == 2 * 530
    dropped = fit_lstm(history.filter(~first_ten), tiny_config(max_epochs=1), features=FEATURES)
    assert dropped.history.n_train == 2 * 525  # without those rows the first 5 windows lack history


def test_save_load_round_trip(model: LSTMModel, frame: pl.DataFrame, tmp_path: Path) -> None:
    model.save(tmp_path / "lstm")
    loaded = load_lstm(tmp_path / "lstm")
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert loaded.features == model.features and loaded.sizes == model.sizes
    assert loaded.bar_seconds == 60 and loaded.history.to_dict() == model.history.to_dict()


def test_early_stopping_stops_and_restores_best_epoch() -> None:
    noise = synthetic_frame(n_per_coin=600, seed=5)
    shuffled = np.random.default_rng(2).integers(0, 3, noise.height)
    noise = noise.with_columns(pl.Series("label", shuffled, dtype=pl.Int8))  # nothing to learn
    fitted = fit_lstm(noise, tiny_config(lr=0.03, patience=1), features=FEATURES, max_epochs=40)
    h = fitted.history
    assert h.stopped_early and h.epochs_run == h.best_epoch + 2 < 40
    assert h.val_loss[h.best_epoch] == min(h.val_loss) == h.best_val_loss
    assert h.lr[1] < h.lr[0]  # cosine annealing moves the rate every epoch
    # the returned weights are the best epoch's: recompute the weighted validation loss from predictions
    proba = fitted.predict_proba(noise)
    val = (noise.get_column("split") == "validation").to_numpy() & ~np.isnan(proba).any(axis=1)
    y = noise.get_column("label").to_numpy()[val]
    w = np.asarray(h.class_weights)[y]
    loss = float((w * -np.log(proba[val][np.arange(y.size), y])).sum() / w.sum())
    assert loss == pytest.approx(h.best_val_loss, rel=1e-4)


def test_bad_inputs_name_what_is_wrong(frame: pl.DataFrame) -> None:
    with pytest.raises(ModelInputError, match="f9"):
        fit_lstm(frame, tiny_config(), features=[*FEATURES, "f9"])
    with pytest.raises(ModelInputError, match="outside the classes"):
        fit_lstm(frame.with_columns(pl.lit(5, pl.Int8).alias("label")), tiny_config(), features=FEATURES)
    with pytest.raises(ModelInputError, match="no labelled validation row"):
        fit_lstm(frame.filter(pl.col("split") != "validation"), tiny_config(), features=FEATURES)
    with pytest.raises(ModelInputError, match="duplicated"):
        fit_lstm(pl.concat([frame, frame.head(1)]), tiny_config(), features=FEATURES)
    with pytest.raises(ValueError, match="unknown keys"):
        sizes_for(WalkForwardConfig(model_params={"lstm": {"units": 3}}))


def test_sizes_presets_batch_size_and_class_weights() -> None:
    prd = sizes_for(WalkForwardConfig(lstm_size="prd"))
    assert (prd.steps, prd.lstm1, prd.lstm2, prd.dense, prd.dropout) == (100, 256, 128, 64, 0.2)
    assert sizes_for(WalkForwardConfig()) == PRESETS["cpu"] and PRESETS["cpu"].threads == 1
    assert sizes_for(WalkForwardConfig(), max_epochs=3).max_epochs == 3
    net = AttentionLSTMNet(50, prd)
    assert (net.lstm1.hidden_size, net.lstm2.hidden_size, net.dense.out_features) == (256, 128, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on tiny batches crawl on a busy machine (see sequence.py)
    try:
        assert net(torch.zeros(2, prd.steps, 50)).shape == (2, 3)
    finally:
        torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    assert [auto_batch_size(n, cpu) for n in (100, 6_000, 60_000, 10**7)] == [32, 32, 256, 512]
    labels = np.array([0] * 10 + [1] * 70 + [2] * 20)
    balanced = class_weights(labels, "balanced")
    np.testing.assert_allclose(balanced, [100 / 30, 100 / 210, 100 / 60])
    np.testing.assert_allclose(class_weights(labels, "sqrt"), np.sqrt(balanced))
