"""Research on real data: does any model beat the baselines, per period and horizon, with intervals?

Plain Python (no Dagster): kimp.research.periods (the real periods), .data (their premium and features
through the files source), .study (the project's one walk-forward, kimp.models.walk_forward, over a
period and horizon), .decision (class weights and the validated choice, fitted on validation rows),
.bootstrap (block bootstrap over days), .report (Markdown/HTML), .run (``run_research``). The CLI is
``kimp research``; the asset ``research_report``. Results: docs/research.md.
"""

from kimp.research.run import ResearchResult, run_research

__all__ = ["ResearchResult", "run_research"]
