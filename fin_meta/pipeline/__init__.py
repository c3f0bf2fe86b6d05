"""The jobs: `run_experiment` (`fin-meta run`), `run_seeds` (`fin-meta run --seeds`: one parent
run, a child run per seed) and the backtest job (`fin-meta backtest`), built from the stages in
`fin_meta.pipeline.stages` (compute), logged by `fin_meta.tracking.records`.

Each job is imported on first use of its name (as `fin_meta` does with its public names):
`fin-meta backtest` loads neither torch nor the training code of the other jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fin_meta.lazy import lazy_exports

if TYPE_CHECKING:
    from fin_meta.pipeline.backtest_job import BacktestJob, run_backtest_job
    from fin_meta.pipeline.run_job import ExperimentOutcome, run_experiment
    from fin_meta.pipeline.seeds import SeedSetOutcome, parse_jobs, parse_seeds, run_seeds

# public name -> the module of this package that defines it
_LAZY: dict[str, str] = {
    "BacktestJob": "backtest_job",
    "run_backtest_job": "backtest_job",
    "ExperimentOutcome": "run_job",
    "run_experiment": "run_job",
    "SeedSetOutcome": "seeds",
    "parse_jobs": "seeds",
    "parse_seeds": "seeds",
    "run_seeds": "seeds",
}

__all__ = ["BacktestJob", "ExperimentOutcome", "SeedSetOutcome", "parse_jobs", "parse_seeds", "run_backtest_job",
           "run_experiment", "run_seeds"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__, globals())
