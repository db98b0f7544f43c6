"""Data-quality suites (Great Expectations as the engine) for raw tables and the premium."""

from kimp.quality.suites import CHECKS, CheckOutcome, QualityConfig, validate

__all__ = ["CHECKS", "CheckOutcome", "QualityConfig", "validate"]
