"""The jobs: `run_experiment` (`fin-meta run`) and the backtest job (`fin-meta backtest`), built
from the stages in `fin_meta.pipeline.stages` (compute), logged by `fin_meta.tracking.records`."""

from fin_meta.pipeline.backtest_job import BacktestJob, run_backtest_job
from fin_meta.pipeline.run_job import ExperimentOutcome, run_experiment

__all__ = ["BacktestJob", "ExperimentOutcome", "run_backtest_job", "run_experiment"]
