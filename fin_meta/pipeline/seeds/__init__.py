"""Seeds as a first-class axis (`fin-meta run X.yaml --seeds 0-4 --jobs 2`, or `seeds: [...]` in
an experiment file): one MLflow parent run with a child run per seed, and the results over seeds
(mean ± sd of every test metric, the agent's paired Sharpe difference to each baseline with a
block-bootstrap CI pooled over seeds). `run_seeds` runs a set (`run`); `parse_seeds` /
`parse_jobs` read the command line's text (`parse`); `child` runs one seed (in the worker
processes of `fin_meta.pipeline.pool`), `pooled` the figures over seeds, `report` the tables and
`SeedSetOutcome`."""

from fin_meta.pipeline.seeds.child import SeedFailed, SeedResult, SourceResult
from fin_meta.pipeline.seeds.parse import parse_jobs, parse_seeds, seed_label
from fin_meta.pipeline.seeds.report import SeedSetOutcome
from fin_meta.pipeline.seeds.run import PARENT_ROLE, run_seeds

__all__ = ["PARENT_ROLE", "SeedFailed", "SeedResult", "SeedSetOutcome", "SourceResult", "parse_jobs", "parse_seeds",
           "run_seeds", "seed_label"]
