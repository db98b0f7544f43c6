"""Research on real data: does any model beat the baselines, per period and horizon, with intervals?

Plain Python (no Dagster): kimp.research.periods (the real periods), .data (their premium and features
through the files source), .study (the project's one walk-forward, kimp.models.walk_forward, over a
period and horizon; the decision rules are kimp.models.decision, the ensemble's validated choice is the
product's kimp.models.walk_forward.fit_day_ensemble), .regression (the premium's change in bp),
.backtest (the after-cost backtest of the predictions through kimp.backtest.daily.backtest_day),
.bootstrap (block bootstrap over days), .report (Markdown/HTML), .run (``run_research``). The CLI is
``kimp research``; the asset ``research_report``. Results: docs/research.md.
"""

from kimp.research.run import ResearchResult, run_research

__all__ = ["ResearchResult", "run_research"]
