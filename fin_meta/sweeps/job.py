"""`run_sweep`: what `fin-meta sweep` does. The experiment file and the space file are checked
first (one line per problem, nothing written), then one MLflow parent run holds the sweep (the
same one again when the sweep is run again: it continues) and every trial is a child run; the
backend (`optuna`, or `ray` for many machines) runs the trials; the end is summarised, logged to
the parent run and returned (`fin_meta.sweeps.report`).

The objective is the validation net Sharpe, so the experiment must have a validation period
(`data.val_start`); the test period is scored by each trial's run but chooses nothing.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fin_meta.config.experiment import ExperimentConfig, config_to_dict, load_config
from fin_meta.errors import ConfigError
from fin_meta.sweeps.objective import SWEEP_TAG, TrialSpec
from fin_meta.sweeps.optuna_backend import OptunaJob, TrialEvent, run_optuna
from fin_meta.sweeps.report import SweepOutcome, log_sweep, summarise
from fin_meta.sweeps.space import SearchSpace, load_space
from fin_meta.sweeps.study import default_pruner, fail_stale_trials, open_study, storage_url
from fin_meta.sweeps.workers import prestart
from fin_meta.tracking import flatten_params, resolve_tracking_uri, start_run
from fin_meta.tracking.nesting import ROLE_TAG
from fin_meta.tracking.query import search_all_runs
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.store import get_or_create_experiment, open_client

__all__ = ["BACKENDS", "RAY_HINT", "require_ray", "run_sweep"]

BACKENDS = ("optuna", "ray")
RAY_HINT = 'the ray backend needs Ray Tune, which is not installed: pip install "fin-meta[ray]"'
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Echo = Callable[[str], Any]


def run_sweep(config: ExperimentConfig | str | Path, space: SearchSpace | str | Path, *, trials: int, jobs: int = 1,
              backend: str = "optuna", name: str | None = None, overrides: Sequence[str] = (),
              tracking_uri: str | None = None, storage: str | None = None, prune: bool = True, pruner: Any = None,
              address: str | None = None, gpus_per_trial: float = 0.0, echo: Echo | None = None,
              progress: bool = True) -> SweepOutcome:
    """Run `trials` more trials of the sweep of `config` (an experiment file, with `--set`
    style `overrides`, or a config) over `space` (a space file or `SearchSpace`), `jobs` at a
    time, on `backend`. `name` (default `<experiment>-<space file stem>`) names the parent run
    and the Optuna study (in `storage`, default `optuna.db` beside `mlflow.db`): the same name
    continues the sweep. `prune`: median pruning (Optuna backend; `pruner` replaces it with any
    Optuna pruner). Ray: `address` (`auto`, `ray://host:10001`; default a local Ray with `jobs`
    CPUs) and `gpus_per_trial` (fractions allowed). Returns a `SweepOutcome`."""
    _check_options(trials, jobs, backend, address, gpus_per_trial)
    if backend == "optuna" and jobs > 1 and trials > 1:
        prestart()  # the workers' fork server imports the heavy libraries while we read the files
    say = echo or (lambda _msg: None)
    cfg, rerun = _experiment(config, overrides)
    _check_experiment(cfg)
    uri = resolve_tracking_uri(tracking_uri or cfg.tracking.tracking_uri)
    base = config_to_dict(cfg)
    base["tracking"].update(tracking_uri=uri, experiment=cfg.tracking.experiment)
    space = space if isinstance(space, SearchSpace) else load_space(space, base)
    name = name or f"{cfg.name}-{Path(space.source).stem}"
    if not _NAME.match(name):
        raise ConfigError(f"sweep name {name!r}: use letters, digits and _.- (--name my-sweep)")
    if backend == "ray":
        require_ray()
    url = storage_url(uri, storage)
    params = {**flatten_params(base), **space.describe()}
    client = open_client(uri)
    parent_id = _existing_parent(client, get_or_create_experiment(client, cfg.tracking.experiment), name, params)
    study = open_study(url, name)
    stale = fail_stale_trials(study)
    if stale:
        say(f"{stale} trial(s) left running by an interrupted session of {name!r} marked failed")
    existing = len(study.trials)
    say(f"sweep {name!r}: {trials} trial(s), {jobs} at a time, {backend} backend; objective: validation net Sharpe"
        + (f"; continuing from {existing} trial(s)" if existing else ""))
    tags = {ROLE_TAG: "parent", SWEEP_TAG: name, "job": "sweep", "sweep.backend": backend, "sweep.storage": url,
            "data.source": ",".join(cfg.data.sources), "agent.algo": cfg.agent.algo}
    with start_run(cfg.tracking.experiment, run_name=name, params=params, tags=tags, tracking_uri=uri,
                   resume_run_id=parent_id) as tracker:
        spec = TrialSpec(base, name, str(tracker.run_id), rerun)
        bar = _Progress(trials, existing, study, tracker, say, progress)
        try:
            if backend == "optuna":
                job = OptunaJob(spec, space, url, name, cfg.seed, existing,
                                pruner if pruner is not None else default_pruner(prune))
                run_optuna(job, trials, jobs, bar.on_event)
            else:
                from fin_meta.sweeps.ray_backend import run_ray

                run_ray(spec, space, url, name, trials=trials, jobs=jobs, seed=cfg.seed + existing, address=address,
                        gpus_per_trial=gpus_per_trial, on_event=bar.on_event, say=say)
        finally:
            bar.close()
        study = open_study(url, name)  # as the workers left it
        outcome = summarise(study, existing, client, SweepOutcome(name, tracker.run_id, uri, url))
        log_sweep(tracker, study, outcome)
    return outcome


def require_ray() -> None:
    """`ConfigError` saying how to install Ray Tune when it is missing."""
    try:
        import ray.tune  # noqa: F401
        from ray.tune.search.optuna import OptunaSearch  # noqa: F401
    except ImportError:
        raise ConfigError(RAY_HINT) from None


def _check_options(trials: int, jobs: int, backend: str, address: str | None, gpus: float) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if trials < 1 or jobs < 1:
        raise ConfigError(f"--trials and --jobs must be at least 1, got {trials} and {jobs}")
    if not math.isfinite(gpus) or gpus < 0:
        raise ConfigError(f"--gpus-per-trial must be >= 0 (fractions allowed, e.g. 0.5), got {gpus}")
    if backend != "ray" and (address or gpus):
        raise ConfigError("--address and --gpus-per-trial are Ray options: add --backend ray")


def _experiment(config: ExperimentConfig | str | Path, overrides: Sequence[str]) -> tuple[ExperimentConfig, str]:
    """The experiment and the `fin-meta run ...` prefix that reruns one of its trials."""
    if isinstance(config, ExperimentConfig):
        if overrides:
            raise ConfigError("overrides apply to an experiment file; this config is already built")
        return config, f"fin-meta run <{config.name}.yaml>"
    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    return load_config(config, overrides=overrides), f"fin-meta run {shlex.quote(str(config))}{sets}"


def _check_experiment(cfg: ExperimentConfig) -> None:
    """One line when the experiment cannot be swept."""
    if cfg.data.val_start is None:
        raise ConfigError(f"{cfg.name}: a sweep needs a validation period: its objective is the validation net "
                          "Sharpe and nothing is chosen on the test period; set data.val_start "
                          "(e.g. --set data.val_start=2011-01-03, after data.train_end)")
    if not cfg.tracking.enabled:
        raise ConfigError(f"{cfg.name}: a sweep logs every trial to MLflow: set tracking.enabled: true")
    if getattr(cfg.evaluation, "walk_forward", None) is not None:
        raise ConfigError(f"{cfg.name}: evaluation.walk_forward refits over the test period; sweep without it")


def _existing_parent(client: Any, experiment_id: str, name: str, params: dict[str, str]) -> str | None:
    """The parent run of an earlier session of the sweep `name` (None: a new sweep);
    `ConfigError` when it was started with other settings."""
    runs = search_all_runs(client, [experiment_id], filter_string=(
        f"tags.`{ROLE_TAG}` = 'parent' and tags.`{SWEEP_TAG}` = '{name}'"))
    if not runs:
        return None
    old = runs[0].data.params
    changed = sorted(k for k in {*old, *params} if old.get(k) != params.get(k))
    if changed:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {params.get(k)!r}" for k in changed[:4])
        raise ConfigError(f"sweep {name!r} was started with other settings ({shown}{', ...' if len(changed) > 4 else ''}); "
                          "continue it with the same experiment, --set and space file, or start another with --name")
    return runs[0].info.run_id


class _Progress:
    """A bar over the session's trials, a line per finished trial, and the running figures on the
    parent run (`sweep.trials.done`, `sweep.best.val.sharpe` at step = trials in the study)."""

    def __init__(self, trials: int, existing: int, study: Any, tracker: Tracker, say: Echo, show: bool) -> None:
        from tqdm.auto import tqdm

        self.tracker, self.say, self.step = tracker, say, existing
        done = [t.value for t in study.trials if t.state.name == "COMPLETE"]
        self.best = max(done, default=-math.inf)
        self.bar = tqdm(total=trials, desc="trials", unit="trial", disable=not show, leave=False)

    def on_event(self, event: TrialEvent) -> None:
        self.step += 1
        if event.value is not None:
            self.best = max(self.best, event.value)
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in event.params.items())
        what = f"validation net Sharpe {event.value:.4g}" if event.value is not None else event.note
        line = f"trial {event.number} {event.state}: {what} ({values})"
        if self.bar.disable:
            self.say(line)
        else:
            self.bar.write(line)  # above the bar
        metrics = {"sweep.trials.done": self.step, **({"sweep.best.val.sharpe": self.best}
                                                      if math.isfinite(self.best) else {})}
        self.tracker.log_metrics(metrics, step=self.step)
        self.bar.update(1)
        if math.isfinite(self.best):
            self.bar.set_postfix(best=f"{self.best:.3g}")

    def close(self) -> None:
        self.bar.close()
