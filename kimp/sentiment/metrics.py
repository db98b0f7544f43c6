"""Classification figures reported for every model: accuracy, macro-F1 and F1 per class."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kimp.sentiment import LABELS


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """accuracy, macro_f1, f1_<class> and the confusion counts' support per class (n_<class>)."""
    from sklearn.metrics import accuracy_score, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per = f1_score(y_true, y_pred, labels=list(range(len(LABELS))), average=None, zero_division=0)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(per)),
    }
    out.update({f"f1_{name}": float(per[i]) for i, name in enumerate(LABELS)})
    out.update({f"n_{name}": float((y_true == i).sum()) for i, name in enumerate(LABELS)})
    return out


def comparison_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table: one row per model, accuracy, macro-F1 and per-class F1 (in points)."""
    cols = ["accuracy", "macro_f1", *(f"f1_{n}" for n in LABELS)]
    head = "| model | accuracy | macro-F1 | " + " | ".join(f"F1 {n}" for n in LABELS) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * m[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)
