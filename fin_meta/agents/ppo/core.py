"""PPO machinery shared by the pooled PPO baseline and RL² (and reusable by other agents):
a preallocated rollout buffer, GAE(lambda), the clipped-surrogate loss, the minibatch update and
the `fit` context of a PPO-trained agent (`PPOFitContext`, `PPOFitContext.update`).

The update works on *units* along axis 0 of the batch tensors: single env-steps for feed-forward
PPO (tensors `[T*N, ...]`) or whole trial sequences for recurrent PPO (tensors `[N, T, ...]`),
so one function serves both. Suffixes: T time steps, N envs, O observation size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fin_meta.agents.ppo.config import PPOLossConfig
from fin_meta.agents.training import FitContext
from fin_meta.envs.actions import action_size, is_discrete
from fin_meta.envs.vector_env import VectorTradingEnv

__all__ = ["RolloutBuffer", "compute_gae", "ppo_loss", "minibatch_update", "ppo_update", "PPOLossWeights", "PPOFitContext"]


class RolloutBuffer:
    """Preallocated `[T, N]` storage of one rollout (on the training device).

    Fields: `obs [T, N, O]`, `actions [T, N]` (float positions or int64 classes; `[T, N, K]` for
    actions of K numbers, e.g. a no-trade band's (target, half-width)), `logp`, `rewards` (already
    scaled), `dones` (1 where the episode ended *after* step t), `values`."""

    def __init__(
        self, steps: int, num_envs: int, obs_size: int, *, device: torch.device, discrete: bool = False,
        action_size: int = 1,
    ) -> None:
        shape = (steps, num_envs)
        self.steps, self.num_envs = steps, num_envs
        self.obs = torch.zeros(*shape, obs_size, device=device)
        action_shape = shape if action_size == 1 else (*shape, action_size)
        self.actions = torch.zeros(action_shape, device=device, dtype=torch.int64 if discrete else torch.float32)
        self.logp = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.dones = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)

    def store(
        self,
        t: int,
        *,
        obs: torch.Tensor,
        action: torch.Tensor,
        logp: torch.Tensor,
        reward: torch.Tensor,
        done: torch.Tensor,
        value: torch.Tensor,
    ) -> None:
        """Write step `t` of every env (tensors `[N, ...]`, cast to the buffer's dtypes)."""
        self.obs[t] = obs
        self.actions[t] = action
        self.logp[t] = logp
        self.rewards[t] = reward
        self.dones[t] = done
        self.values[t] = value


@torch.no_grad()
def compute_gae(
    rewards_TN: torch.Tensor,
    values_TN: torch.Tensor,
    dones_TN: torch.Tensor,
    last_value_N: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and value targets (`advantages + values`), `[T, N]` each.

    `dones[t] = 1` cuts bootstrapping after step t (the next value belongs to a new episode or
    trial); `last_value_N` bootstraps after the final step. The recursion runs backwards over
    the T steps, vectorised across the N envs."""
    steps = rewards_TN.shape[0]
    adv = torch.zeros_like(rewards_TN)
    next_adv = torch.zeros_like(last_value_N)
    next_value = last_value_N
    for t in range(steps - 1, -1, -1):
        keep = 1.0 - dones_TN[t]
        delta = rewards_TN[t] + gamma * next_value * keep - values_TN[t]
        next_adv = delta + gamma * lam * keep * next_adv
        adv[t] = next_adv
        next_value = values_TN[t]
    return adv, adv + values_TN


@dataclass(frozen=True)
class PPOLossWeights:
    """Coefficients of the PPO objective."""

    clip_coef: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = True

    @classmethod
    def from_config(cls, hparams: PPOLossConfig) -> PPOLossWeights:
        """The weights an agent's PPO settings give."""
        return cls(hparams.clip_coef, hparams.value_coef, hparams.entropy_coef, hparams.normalize_advantages)


def ppo_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    weights: PPOLossWeights,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-surrogate policy loss + `value_coef` x squared value error - `entropy_coef` x
    entropy (means over all elements). Returns the loss and detached statistics."""
    if weights.normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    surrogate = torch.max(
        -advantages * ratio, -advantages * ratio.clamp(1 - weights.clip_coef, 1 + weights.clip_coef)
    )
    policy_loss = surrogate.mean()
    value_loss = 0.5 * (new_values - returns).pow(2).mean()
    ent = entropy.mean()
    loss = policy_loss + weights.value_coef * value_loss - weights.entropy_coef * ent
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": ent.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),  # the low-variance k3 estimator
            "clip_frac": ((ratio - 1).abs() > weights.clip_coef).float().mean(),
        }
    return loss, stats


Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
"""`evaluate(unit_idx) -> (new_logp, entropy, new_values)` for the selected units, shaped like
`batch[key][unit_idx]`, optionally followed by a weighted auxiliary loss (a scalar added to the
PPO loss, e.g. RL²'s belief supervision; reported as `aux_loss`)."""


LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""`loss_fn(unit_idx) -> (loss, detached statistics)` of the selected units."""


def minibatch_update(
    loss_fn: LossFn,
    units: int,
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[nn.Parameter],
    *,
    epochs: int,
    minibatches: int,
    max_grad_norm: float,
    generator: torch.Generator,
    stop: Callable[[dict[str, float]], bool] | None = None,
) -> dict[str, float]:
    """`epochs` passes of `minibatches` shuffled minibatches over `units` units (indices along
    axis 0 of whatever `loss_fn` reads), an optimiser step with gradient clipping on each
    (`grad_norm` joins the statistics); stops after an epoch whose mean statistics make `stop`
    true. Returns the mean statistics of the last epoch."""
    params = list(parameters)
    mb = max(1, units // minibatches)
    device = next(iter(params)).device
    means: dict[str, float] = {}
    for _ in range(epochs):
        totals: dict[str, torch.Tensor] = {}
        order = torch.randperm(units, generator=generator, device=generator.device).to(device)
        count = 0
        for start in range(0, units - mb + 1, mb):
            loss, stats = loss_fn(order[start : start + mb])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["grad_norm"] = nn.utils.clip_grad_norm_(params, max_grad_norm).detach()
            optimizer.step()
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
        means = {k: float(v / count) for k, v in totals.items()}
        if stop is not None and stop(means):
            break
    return means


def ppo_update(
    evaluate: Evaluate,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[nn.Parameter],
    *,
    weights: PPOLossWeights,
    epochs: int,
    minibatches: int,
    max_grad_norm: float,
    generator: torch.Generator,
    target_kl: float | None = None,
) -> dict[str, float]:
    """`minibatch_update` of the clipped-surrogate loss over the units of `batch` (keys `logp`,
    `advantages`, `returns`, indexed along axis 0); stops early when `target_kl` is exceeded.
    Returns the mean statistics of the last epoch."""

    def loss_fn(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        new_logp, entropy, new_values, *aux = evaluate(idx)
        loss, stats = ppo_loss(new_logp, batch["logp"][idx], batch["advantages"][idx], new_values,
                               batch["returns"][idx], entropy, weights)
        if aux:
            loss = loss + aux[0]
            stats["aux_loss"] = aux[0].detach()
        return loss, stats

    stop = None if target_kl is None else (lambda means: means["approx_kl"] > target_kl)
    return minibatch_update(loss_fn, batch["logp"].shape[0], optimizer, parameters, epochs=epochs,
                            minibatches=minibatches, max_grad_norm=max_grad_norm, generator=generator, stop=stop)


@dataclass
class PPOFitContext(FitContext):
    """What one `fit` call of a PPO-trained agent shares across its iterations: besides the
    generators and the optimiser, the env its rollouts run in (`num_envs` envs), the rollout
    buffer, the loss weights and the agent's PPO settings."""

    env: VectorTradingEnv
    buffer: RolloutBuffer
    weights: PPOLossWeights
    hparams: PPOLossConfig

    @classmethod
    def create(
        cls,
        hparams: PPOLossConfig,
        env: VectorTradingEnv,
        *,
        steps: int,
        input_size: int,
        rng: np.random.Generator,
        gen: torch.Generator,
        optimizer: torch.optim.Optimizer,
    ) -> PPOFitContext:
        """A context for rollouts of `steps` steps in each env of `env`, storing network inputs
        of `input_size` (the env's action space sets the buffer's action dtype)."""
        buffer = RolloutBuffer(steps, env.num_envs, input_size, device=env.device,
                               discrete=is_discrete(env.config), action_size=action_size(env.config))
        return cls(rng=rng, gen=gen, optimizer=optimizer, env_steps_per_iteration=steps * env.num_envs,
                   env=env, buffer=buffer, weights=PPOLossWeights.from_config(hparams), hparams=hparams)

    def update(self, evaluate: Evaluate, batch: dict[str, torch.Tensor],
               parameters: Iterable[nn.Parameter]) -> dict[str, float]:
        """`ppo_update` of `parameters` over `batch` with this fit's optimiser, loss weights,
        generator and PPO settings (epochs, minibatches, gradient clip, target KL)."""
        h = self.hparams
        return ppo_update(evaluate, batch, self.optimizer, parameters, weights=self.weights, epochs=h.epochs,
                          minibatches=h.minibatches, max_grad_norm=h.max_grad_norm, generator=self.gen,
                          target_kl=h.target_kl)
