"""The jobs: `run_experiment` (`fin-meta run`) and the backtest job (`fin-meta backtest`)."""

from fin_meta.pipeline.run_job import ExperimentOutcome, run_experiment

__all__ = ["ExperimentOutcome", "run_experiment"]
