"""Hyperparameters of the PPO baseline and the PPO loss settings RL² shares (torch-free, so
configs validate fast).

RL²'s model lives in `fin_meta.agents.rl2.config`, MAML's in `fin_meta.agents.maml.config`. Every field has a docstring; unknown keys
are rejected (`extra="forbid"`) so a typo in an experiment file is an error, not a silent default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PPOLossConfig", "PPOConfig"]


class PPOLossConfig(BaseModel):
    """Settings shared by every PPO-trained agent (the clipped-surrogate update)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    """Seed of the torch Generator (action sampling, minibatch order) and the numpy Generator
    (task sampling). Same seed, same CPU -> identical training and positions."""
    device: str = "auto"
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`."""
    num_envs: int = Field(256, ge=1)
    """Parallel environments in the `VectorTradingEnv` (rollout batch width)."""
    lr: float = Field(3e-4, gt=0)
    """Adam learning rate."""
    gamma: float = Field(0.99, ge=0, le=1)
    """Discount factor per bar."""
    gae_lambda: float = Field(0.95, ge=0, le=1)
    """GAE(lambda) parameter."""
    clip_coef: float = Field(0.2, gt=0)
    """PPO ratio clipping epsilon."""
    value_coef: float = Field(0.5, ge=0)
    """Weight of the value loss."""
    entropy_coef: float = Field(0.0, ge=0)
    """Weight of the entropy bonus."""
    epochs: int = Field(4, ge=1)
    """Optimisation passes over each rollout."""
    minibatches: int = Field(4, ge=1)
    """Minibatches per epoch (PPO: over env-steps; RL²: over whole trial sequences)."""
    max_grad_norm: float = Field(0.5, gt=0)
    """Global gradient-norm clip."""
    target_kl: float | None = Field(None, gt=0)
    """Stop an update's epochs early when the approximate KL exceeds this (None: never)."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy (continuous actions), in position units."""
    reward_scale: float = Field(100.0, gt=0)
    """Rewards are multiplied by this for learning (and as RL² input): 100 suits daily log
    returns (~1e-2 per bar); use ~1 with the differential-Sharpe reward."""
    normalize_advantages: bool = True
    """Standardise advantages per minibatch."""
    cpu_threads: int | None = Field(1, ge=1)
    """torch intra-op threads while this agent trains or walks forward on CPU (the previous
    setting is restored afterwards). These networks are small: 1 thread is fastest and avoids
    oversubscription when several processes share the cores. None leaves torch's setting."""


class PPOConfig(PPOLossConfig):
    """Pooled PPO (no meta-learning): one MLP actor-critic trained on tasks of every regime."""

    rollout_steps: int = Field(64, ge=1)
    """Env steps per environment per iteration (a rollout is `num_envs x rollout_steps`)."""
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden layer widths of the actor and of the critic MLP (separate networks)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
