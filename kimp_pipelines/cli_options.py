"""What every ``kimp`` command group shares: the one Settings from the environment, and day options."""

from __future__ import annotations

from datetime import date

import click

from kimp.settings import Settings


def settings_from_env() -> Settings:
    """The Settings of this command; a bad variable is a usage message, not a trace."""
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def day_option(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    """Click callback: an ISO day, or None when the option is not given."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None
