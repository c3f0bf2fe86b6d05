"""Belief supervision for the recurrent agents (Humplik et al. 2019; VariBAD's `decode_task`): a
linear head on the policy's GRU features predicts the training task's regime label at every
step, its cross-entropy added to the PPO loss (x `belief_coef`). The labels come from the task
sampler (`TaskSampler.window_labels`: the label of each decision bar) and are training-only:
a target, and with `gate_teacher_iterations` a teacher mixed into the belief gate early in
training; they never enter the network's inputs, and deployment does not need them.

Suffixes: T time steps, N trials, C regime classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from fin_meta.agents.networks import GRUActorCritic
from fin_meta.agents.rl2.config import RL2Config
from fin_meta.agents.torch_runtime import seeded
from fin_meta.errors import ConfigError
from fin_meta.tasks import TaskSampler

__all__ = ["add_belief_head", "attach_belief_head", "trial_labels", "belief_loss", "belief_stats", "teacher_weight",
           "teacher_gate"]


def add_belief_head(net: GRUActorCritic, classes: int, seed: int, *, gate: bool = False) -> None:
    """Add the head (and with `gate` the belief-gated action head) under its own seeded stream
    (the same weights whenever it is added)."""
    with seeded(seed + 1):
        net.add_belief_head(classes, gate=gate)


def attach_belief_head(net: GRUActorCritic, hparams: RL2Config, sampler: TaskSampler) -> RL2Config:
    """Give `net` a belief head over the sampler's regimes (largest label + 1 classes, unless
    `belief_classes` is set) if it has none; returns the hyperparameters with `belief_classes`
    filled in (saved with the agent, so `load` rebuilds the head). A sampler with more regimes
    than the head was built for is a `ConfigError`."""
    need = int(sampler.regimes.max()) + 1
    classes = hparams.belief_classes or max(need, 2)
    if need > classes:
        raise ConfigError(f"the task sampler has regime labels up to {need - 1} but the belief head predicts "
                          f"{classes} classes (belief_classes); set belief_classes to {need} or more")
    if net.belief is None:
        add_belief_head(net, classes, hparams.seed, gate=hparams.belief_gate)
    return hparams.model_copy(update={"belief_classes": classes})


def trial_labels(sampler: TaskSampler, episodes: Sequence[tuple[np.ndarray, np.ndarray, int]], classes: int,
                 device: torch.device) -> torch.Tensor:
    """The regime label of every step of the trials played as `episodes` (`(asset, start,
    decisions)` each, in order): int64 `[T, N]`, -1 where unlabelled or outside the head's classes."""
    labels = np.concatenate([sampler.window_labels(a, s, d) for a, s, d in episodes], axis=1)
    labels[labels >= classes] = -1
    return torch.as_tensor(np.ascontiguousarray(labels.T), device=device)


def belief_loss(logits_TNC: torch.Tensor, labels_TN: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) over the labelled steps (0, still in the graph, when none is)."""
    known = labels_TN >= 0
    if not bool(known.any()):
        return logits_TNC.sum() * 0.0
    return F.cross_entropy(logits_TNC[known], labels_TN[known])


@torch.no_grad()
def belief_stats(logits_TNC: torch.Tensor, labels_TN: torch.Tensor) -> dict[str, float]:
    """`belief_loss` (nats) and `belief_accuracy` (fraction) over the labelled steps (NaN if none)."""
    known = labels_TN >= 0
    if not bool(known.any()):
        return {"belief_loss": float("nan"), "belief_accuracy": float("nan")}
    correct = (logits_TNC.argmax(-1) == labels_TN)[known].float().mean()
    return {"belief_loss": float(belief_loss(logits_TNC, labels_TN)), "belief_accuracy": float(correct)}


def teacher_weight(iterations_trained: int, teacher_iterations: int) -> float:
    """Weight of the true label in the gate this iteration: 1 - i / N for the first N
    (`gate_teacher_iterations`) iterations, then 0 (a function of the iteration alone, so a
    resumed fit follows the same schedule)."""
    if teacher_iterations <= 0:
        return 0.0
    return max(0.0, 1.0 - iterations_trained / teacher_iterations)


def teacher_gate(belief_probs: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """The gate's probabilities `[..., C]` in training: `weight` x one-hot(true label) + (1 -
    weight) x the belief, the belief alone where a step has no label (-1)."""
    if weight <= 0.0:
        return belief_probs
    known = labels >= 0
    one_hot = F.one_hot(labels.clamp(min=0), belief_probs.shape[-1]).to(belief_probs.dtype)
    mixed = weight * one_hot + (1.0 - weight) * belief_probs
    return torch.where(known.unsqueeze(-1), mixed, belief_probs)
