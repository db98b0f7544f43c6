"""Plots and summaries shared by assets and the CLI (matplotlib, Agg backend, no display needed)."""
