"""The training stage: train an agent for its budget on the training period's tasks, logging each
iteration's metrics and checkpoints as it goes (a resumed run continues from its last
checkpoint), and, with a validation period, select the checkpoint to test on it.

Validation (`Validation`): every `every` iterations (and after the last) the agent is scored on
the validation period (`stages.validation_scores`: walked forward with its context, backtested
net of costs); the scores are logged as `<prefix>val.<metric>` at step = iterations trained. The
checkpoint with the best validation net Sharpe is kept (saved in a scratch folder, and in the run
as `best_<checkpoint>/`) and is the agent returned, the one walked over the test period. With
`patience`, training stops after that many evaluations in a row without a better one. Nothing
here reads the test period.

Resume: every checkpoint made while validating also records the early-stopping state as of its
iteration (tag `fin_meta.<checkpoint>.validation`, JSON, the last two states), so a resumed run
evaluates, selects and stops exactly as the uninterrupted one. A run whose records do not fit
together (a state or a best checkpoint from another iteration) is refused in one line.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fin_meta.agents import Agent, load_agent
from fin_meta.errors import FinMetaError
from fin_meta.tasks import TaskSampler
from fin_meta.tracking.checkpoints import Checkpointer
from fin_meta.tracking.records import log_validation
from fin_meta.tracking.run import Tracker

__all__ = ["EarlyStopping", "Trained", "Validation", "evaluation_points", "train"]


@dataclass
class Validation:
    """How training is validated: `score(agent)` -> `{metric: value}` (net `sharpe` decides),
    every `every` iterations; `patience`: evaluations without improvement before stopping (None:
    never stop early); `report(iterations, sharpe)` is called after each evaluation is recorded
    and may raise to stop the run (a sweep's pruning)."""

    score: Callable[[Agent], dict[str, float]]
    every: int
    patience: int | None = None
    report: Callable[[int, float], None] | None = None


@dataclass
class EarlyStopping:
    """The selection state after `iteration` iterations: the best validation net Sharpe so far
    (`best_score`, NaN counts as -inf; the first evaluation is always the best so far), the
    iteration of its checkpoint, the evaluations since it, and whether training stopped."""

    patience: int | None
    iteration: int = 0
    best_iteration: int | None = None
    best_score: float = -math.inf
    since_best: int = 0
    stopped: bool = False

    def update(self, iteration: int, score: float) -> bool:
        """Record the evaluation after `iteration` iterations; True when it is the new best."""
        value = score if math.isfinite(score) else -math.inf
        improved = self.best_iteration is None or value > self.best_score
        if improved:
            self.best_iteration, self.best_score, self.since_best = iteration, value, 0
        else:
            self.since_best += 1
        self.iteration = iteration
        self.stopped = self.patience is not None and self.since_best >= self.patience
        return improved


@dataclass
class Trained:
    """What `train` returns: the agent to test (the best on validation, else the last), the
    iterations trained (fewer than the budget when stopped early) and, when validating, the
    selection state and this session's evaluations (`{"iteration": n, **scores}` each)."""

    agent: Agent
    iterations: int
    selection: EarlyStopping | None = None
    evaluations: list[dict[str, float]] = field(default_factory=list)

    def describe(self, name: str, budget: int) -> str:
        """One line: what was trained and which checkpoint is tested."""
        if self.selection is None or self.selection.best_iteration is None:
            return f"{name}: {self.iterations} of {budget} iterations; the last checkpoint is tested"
        sel = self.selection
        stop = (f", stopped early ({sel.since_best} evaluation{'s' if sel.since_best > 1 else ''} without "
                "improvement)") if sel.stopped else ""
        return (f"{name}: {self.iterations} of {budget} iterations{stop}; tested: the checkpoint after "
                f"{sel.best_iteration} iterations, best validation net Sharpe {sel.best_score:.2f}")


def evaluation_points(iterations: int, every: int) -> list[int]:
    """Iterations trained after which the agent is validated: every `every`, and the last."""
    return sorted({*range(every, iterations, every), iterations})


def train(agent: Agent, sampler: TaskSampler, iterations: int, tracker: Tracker, *, checkpoint: str = "checkpoint",
          prefix: str = "", resume: bool = False, progress: bool = True,
          validation: Validation | None = None) -> Trained:
    """Train `agent` for `iterations` iterations in all on `sampler`'s tasks. Each iteration's
    metrics are logged as `<prefix>train.<name>` (step: the iteration, from 0); a checkpoint
    (artifact folder `checkpoint`) is saved every fifth of the budget, at the end and, when
    validating, after every evaluation. `resume` continues from the run's last checkpoint of
    that name (and its validation state). `validation`: see the module docstring."""
    checkpoints = Checkpointer(tracker, name=checkpoint)
    restored, done = checkpoints.restore() if resume else (None, 0)
    agent = restored if restored is not None else agent
    every = max(1, iterations // 5)
    if validation is None:
        _fit(agent, sampler, done, iterations, tracker, every, prefix, progress, checkpoints.save, save_at_end=True)
        return Trained(agent, iterations)
    selection = Selection(tracker, checkpoints, validation.patience)
    with tempfile.TemporaryDirectory(prefix="fin-meta-best-") as scratch:
        best_dir = Path(scratch) / "best"
        if done:
            selection.restore(agent, done, best_dir)
        evaluations = []
        for point in evaluation_points(iterations, validation.every):
            if point <= done:
                continue
            if selection.state.stopped:
                break
            _fit(agent, sampler, done, point, tracker, every, prefix, progress, selection.save, save_at_end=False)
            done = point
            scores = validation.score(agent)
            evaluations.append({"iteration": float(done), **scores})
            log_validation(tracker, scores, step=done, prefix=f"{prefix}val.")
            selection.after_evaluation(agent, done, scores["sharpe"], best_dir)
            if validation.report is not None:
                validation.report(done, scores["sharpe"])
        best = load_agent(best_dir) if best_dir.exists() else agent
    return Trained(best, done, selection.state, evaluations)


def _fit(agent: Agent, sampler: TaskSampler, done: int, until: int, tracker: Tracker, every: int, prefix: str,
         progress: bool, save: Callable[[Agent, int], None], *, save_at_end: bool) -> None:
    """Train from `done` to `until` iterations, logging each iteration and checkpointing
    (`save(agent, iterations)`) every `every` iterations and at `until` (unless `save_at_end`
    is False: the caller saves it after validating)."""
    if until <= done:
        return

    def on_iteration(iteration: int, metrics: dict[str, float]) -> None:
        step = done + iteration
        tracker.log_metrics({f"{prefix}train.{k}": v for k, v in metrics.items()}, step=step)
        if (step + 1 == until and save_at_end) or ((step + 1) % every == 0 and step + 1 != until):
            save(agent, step + 1)

    agent.fit(sampler, iterations=until - done, callback=on_iteration, progress=progress)


class Selection:
    """The early-stopping state of one training and where it is kept: the best agent in a scratch
    folder and in the run (`best_<checkpoint>/`), the state in the checkpoint's tag."""

    def __init__(self, tracker: Tracker, checkpoints: Checkpointer, patience: int | None) -> None:
        self.tracker, self.checkpoints = tracker, checkpoints
        self.best = Checkpointer(tracker, name=f"best_{checkpoints.name}")
        self.state = EarlyStopping(patience)
        self._previous: dict[str, object] | None = None

    @property
    def tag(self) -> str:
        return f"fin_meta.{self.checkpoints.name}.validation"

    def after_evaluation(self, agent: Agent, done: int, score: float, best_dir: Path) -> None:
        """Update the state with the evaluation after `done` iterations, keep the agent when it is
        the best, then checkpoint: the state first (with the previous one), then the agent (the
        commit), then the best checkpoint, so that an interruption anywhere resumes faithfully."""
        improved = self.state.update(done, score)
        if improved:
            agent.save(best_dir, training_state=False)
        self.save(agent, done)
        if improved:
            self.best.save(agent, done)

    def save(self, agent: Agent, iterations: int) -> None:
        """Checkpoint `agent` after `iterations` iterations with the state as of then: the state
        (beside the previous one) first, then the checkpoint, whose tag commits both."""
        self.state.iteration = iterations
        current = asdict(self.state)
        if self.tracker.enabled:
            self.tracker.set_tags({self.tag: json.dumps([s for s in (self._previous, current) if s])})
        self._previous = current
        self.checkpoints.save(agent, iterations)

    def restore(self, agent: Agent, done: int, best_dir: Path) -> None:
        """The state and best agent of a resumed run whose checkpoint is after `done` iterations
        (`agent`: that checkpoint). `FinMetaError` (one line) when the records do not fit."""
        run = self.tracker.run_id
        states = json.loads(self.tracker.client.get_run(run).data.tags.get(self.tag, "[]")) if run else []
        state = next((s for s in states if s["iteration"] == done), None)
        if state is None:
            raise FinMetaError(f"resume: run {run} has no validation state for its checkpoint after {done} "
                               "iterations, so early stopping cannot continue faithfully; start a new run")
        self.state = EarlyStopping(**{**state, "patience": self.state.patience})
        self._previous = state
        if self.state.best_iteration == done:  # the checkpoint is the best: keep it (again) as such
            agent.save(best_dir, training_state=False)
            self.best.save(agent, done)
        elif self.state.best_iteration is not None:
            best, at = self.best.restore()
            if best is None or at != self.state.best_iteration:
                raise FinMetaError(f"resume: run {run}'s best checkpoint is from iteration {at}, its validation "
                                   f"state says {self.state.best_iteration}; start a new run")
            best.save(best_dir, training_state=False)
