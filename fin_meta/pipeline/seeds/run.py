"""`run_seeds(config, seeds, jobs=J)`: one experiment over several seeds. One MLflow parent run
(tag `fin_meta.role` = `parent`), a child run per seed (`run_experiment` with that seed, tagged
with `nesting.child_tags`), run one after another in this process or in J worker processes
(`pipeline.pool`); then the parent logs the results over seeds (`seeds.report.summarise`).

Every seed runs with ONE torch CPU thread, whatever J is: CPU kernels give (slightly) different
numbers with different thread counts, so this is what makes `--jobs J` change the wall time
and nothing else. Use `--jobs auto` to put the cores to work.

The parent logs: its config (`config.yaml`, with the seeds; params as a run's, `seed` left out,
`seeds` in), the mean and sd over seeds of every `test.*` metric the children logged
(`test.sharpe.mean`, `test.sharpe.buy_and_hold.sd`, ... : `tracking.family`), the agent's Sharpe
minus each other strategy's with its paired CI pooled over seeds (`test.sharpe_diff.<strategy>`,
`.ci_low`, `.ci_high`), the table `seeds/summary.csv|md` (also its description), each seed's
run (`seeds/children.csv`) and every seed's test returns (`seeds/test_returns.csv`).

A seed that fails stops the set (no further seed starts; running ones finish): the parent ends
FAILED with one line naming the seed. Ctrl-C stops every seed (each run ends FAILED). A parent
cannot be resumed (`run_experiment` refuses it); a seed's own run can.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fin_meta.config import ExperimentConfig, config_to_dict, load_config
from fin_meta.errors import ConfigError
from fin_meta.pipeline.pool import TaskFailed, run_pool
from fin_meta.pipeline.seeds.child import SeedResult, run_child, seed_failure, torch_threads
from fin_meta.pipeline.seeds.parse import parse_jobs, seed_label
from fin_meta.pipeline.seeds.report import (
    SeedSetOutcome,
    describe_set,
    diff_metrics,
    markdown_seed_table,
    summarise,
)
from fin_meta.pipeline.summary import run_name
from fin_meta.tracking import flatten_params, start_run
from fin_meta.tracking.checkpoints import CONFIG_ARTIFACT
from fin_meta.tracking.family import log_family_metrics
from fin_meta.tracking.nesting import ROLE_TAG, SEED_CHILDREN, SEED_RETURNS, SEED_SUMMARY
from fin_meta.tracking.records import set_description
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.tags import Heartbeat

__all__ = ["PARENT_ROLE", "run_seeds"]

PARENT_ROLE = "parent"
"""`nesting.ROLE_TAG` of a seed set's parent run."""
THREADS = 1
"""Torch CPU threads of every seed's run (see the module docstring)."""
Echo = Callable[[str], Any]


def run_seeds(config: ExperimentConfig | str | Path, seeds: Sequence[int] | None = None, *, jobs: int | str = 1,
              echo: Echo | None = None, progress: bool = True) -> SeedSetOutcome:
    """Run `config` once per seed (`seeds`, default the config's `seeds`) as a parent MLflow run
    with a child per seed, `jobs` at a time (`parse_jobs`: 0 or "auto" = one per core); see the
    module docstring. Returns a `SeedSetOutcome`."""
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds or [cfg.seed])]
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise ConfigError(f"seeds: {seeds} is not a seed set; give distinct whole numbers >= 0, e.g. [0, 1, 2, 3, 4]")
    cfg = cfg.model_copy(update={"seeds": seeds})
    jobs = max(1, min(parse_jobs(jobs), len(seeds)))
    say = echo or (lambda _msg: None)
    params = {k: v for k, v in flatten_params(config_to_dict(cfg)).items() if k != "seed"}
    tags = {ROLE_TAG: PARENT_ROLE, "seeds": seed_label(seeds), "data.source": ",".join(cfg.data.sources),
            "agent.algo": cfg.agent.algo, "job": "run"}
    name = run_name(cfg.agent.algo, cfg.data.sources, seeds[0], when := dt.datetime.now())
    name = name.replace(f"-s{seeds[0]}-{when:%Y%m%d}", f"-s{seed_label(seeds)}-{when:%Y%m%d}")
    start = time.perf_counter()
    tracking = cfg.tracking
    with start_run(tracking.experiment or cfg.name, run_name=name, params=params, tags=tags,
                   tracking_uri=tracking.tracking_uri, enabled=tracking.enabled) as tracker:
        set_description(tracker, describe_set(cfg, seeds, None))
        tracker.log_dict(config_to_dict(cfg), CONFIG_ARTIFACT)
        where = f"; MLflow parent run {tracker.run_id}" if tracker.enabled else ""
        say(f"seed set {seed_label(seeds)}: {len(seeds)} runs of {cfg.name}, {jobs} at a time{where}")
        children = _run_children(cfg, seeds, tracker, jobs, say, progress)
        summary = summarise(children, n_resamples=cfg.evaluation.bootstrap_samples, seed=seeds[0])
        agent = children[0].agent
        _log_set(tracker, children, summary)
        wall = time.perf_counter() - start
        log_family_metrics(tracker, [c.run_id for c in children if c.run_id],
                           extra={**diff_metrics(summary), "time.seeds_s": wall})
        set_description(tracker, describe_set(cfg, seeds, summary, children, agent))
    return SeedSetOutcome(config=cfg, seeds=seeds, children=children, summary=summary, run_id=tracker.run_id,
                          tracking_uri=tracking.tracking_uri, wall_s=wall, jobs=jobs, agent=agent)


def _run_children(cfg: ExperimentConfig, seeds: list[int], tracker: Tracker, jobs: int, say: Echo,
                  progress: bool) -> list[SeedResult]:
    """Every seed's run, in seed order: here one after another (`jobs` 1, the runs' progress
    shown), else in `jobs` worker processes; the parent's heartbeat is renewed meanwhile."""
    beat = Heartbeat()
    done: list[SeedResult] = []

    def finished(result: SeedResult) -> None:
        done.append(result)
        run = f" (MLflow run {result.run_id})" if result.run_id else ""
        say(f"  seed {result.seed} finished in {result.wall_s:.0f} s{run}; {len(done)}/{len(seeds)} done")
        tracker.set_tags(beat.due())

    if jobs == 1:
        with torch_threads(THREADS):
            for seed in seeds:
                def echo(msg: str, seed: int = seed) -> None:
                    say(f"  seed {seed} {msg.strip()}")
                    tracker.set_tags(beat.due())

                say(f"seed {seed} ({len(done) + 1}/{len(seeds)})")
                try:
                    finished(run_child(cfg, seed, tracker.run_id, progress=progress, echo=echo))
                except Exception as exc:
                    raise seed_failure(seed, exc) from exc
        return done
    tasks = [(cfg, seed, tracker.run_id) for seed in seeds]
    try:
        results = run_pool(run_child, tasks, jobs=jobs, threads=THREADS, on_result=lambda _i, r: finished(r),
                           on_tick=lambda: tracker.set_tags(beat.due()))
    except TaskFailed as failed:
        raise seed_failure(seeds[failed.index], failed.error) from None
    return results


def _log_set(tracker: Tracker, children: Sequence[SeedResult], summary: pd.DataFrame) -> None:
    """The parent's tables: `seeds/summary.csv|md`, `seeds/children.csv`, `seeds/test_returns.csv`."""
    tracker.log_table(summary, SEED_SUMMARY)
    tracker.log_text(markdown_seed_table(summary), SEED_SUMMARY.replace(".csv", ".md"))
    tracker.log_table(pd.DataFrame([{"seed": c.seed, "run_id": c.run_id, "wall_s": c.wall_s} for c in children]),
                      SEED_CHILDREN)
    returns = [s.returns.rename_axis("date").reset_index().assign(seed=c.seed, source=s.name)
               for c in children for s in c.sources]
    frame = pd.concat(returns, ignore_index=True)
    tracker.log_table(frame[["seed", "source", *[c for c in frame.columns if c not in ("seed", "source")]]],
                      SEED_RETURNS)
