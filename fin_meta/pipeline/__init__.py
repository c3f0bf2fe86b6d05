"""The jobs: `run_experiment` (`fin-meta run`), `run_seeds` (`fin-meta run --seeds`: one parent
run, a child run per seed) and the backtest job (`fin-meta backtest`), built from the stages in
`fin_meta.pipeline.stages` (compute), logged by `fin_meta.tracking.records`."""

from fin_meta.pipeline.backtest_job import BacktestJob, run_backtest_job
from fin_meta.pipeline.run_job import ExperimentOutcome, run_experiment
from fin_meta.pipeline.seeds import SeedSetOutcome, parse_jobs, parse_seeds, run_seeds

__all__ = ["BacktestJob", "ExperimentOutcome", "SeedSetOutcome", "parse_jobs", "parse_seeds", "run_backtest_job",
           "run_experiment", "run_seeds"]
