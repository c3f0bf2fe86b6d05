"""Pooled PPO: one MLP actor-critic trained on tasks of every regime, no meta-learning — the
baseline the meta agents must beat.

One iteration: `collect` draws `num_envs` task windows from the sampler (regime-balanced),
plays one episode of `episode_length` decisions in each with a `VectorTradingEnv`, bootstraps
the value of the truncated end from the final observation and computes GAE; `update` runs
`epochs x minibatches` clipped-PPO updates over the `num_envs x episode_length` env-steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.agents.networks import MLPActorCritic
from fin_meta.agents.ppo.config import PPOConfig
from fin_meta.agents.ppo.core import PPOFitContext, compute_gae
from fin_meta.agents.torch_agent import TorchAgent
from fin_meta.envs.actions import action_bounds
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.tasks import TaskSampler

__all__ = ["PPOAgent", "PPOConfig", "PPORollout"]


class _MeanPolicy:
    """Deterministic MLP policy: the clipped mean (continuous) / most likely class (discrete)."""

    def __init__(self, net: MLPActorCritic) -> None:
        self.net = net

    def act(self, obs_NO: torch.Tensor, feedback: Feedback) -> torch.Tensor:
        del feedback  # memoryless: the held position is already in the observation
        return self.net.head.mode_of(self.net.actor_body(self.net.norm(obs_NO)))


@dataclass
class PPORollout:
    """One iteration's episodes, flattened over the `T x N` env-steps (the PPO units):
    `batch` holds `obs`, `actions`, `logp`, `advantages`, `returns`; `episode_return_N` is each
    env's summed unscaled reward (net log return of the episode, by default)."""

    batch: dict[str, torch.Tensor]
    episode_return_N: torch.Tensor


class PPOAgent(TorchAgent):
    """Pooled PPO baseline (see the module docstring). `PPOAgent(env_config, hparams)`."""

    algo: ClassVar[str] = "ppo"
    config_cls = PPOConfig
    stateful: ClassVar[bool] = False
    hparams: PPOConfig
    net: MLPActorCritic

    def build_network(self) -> MLPActorCritic:
        low, high = action_bounds(self.env_config)
        h = self.hparams
        return MLPActorCritic(self.obs_size, h.hidden_sizes, self.env_config.action, low, high,
                              init_log_std=h.init_log_std, activation=h.activation)

    def step_policy(self) -> _MeanPolicy:
        return _MeanPolicy(self.net)

    def fit_context(self, sampler: TaskSampler, rng: np.random.Generator, gen: torch.Generator) -> PPOFitContext:
        """`num_envs` envs over the sampler's prices, a buffer of one episode in each."""
        h = self.hparams
        env = VectorTradingEnv(sampler.prices, h.num_envs, device=self.device, seed=h.seed,
                               config=self.env_config, final_obs=True, training=True)
        return PPOFitContext.create(h, env, steps=sampler.episode_length, input_size=self.obs_size,
                                    rng=rng, gen=gen, optimizer=self.optimizer())

    @torch.no_grad()
    def collect(self, sampler: TaskSampler, ctx: PPOFitContext) -> PPORollout:
        """One episode in each of `num_envs` freshly sampled task windows, with GAE."""
        self.net.eval()
        h, env, buf, n = self.hparams, ctx.env, ctx.buffer, self.hparams.num_envs
        asset, start, length, _regime = sampler.sample_task_arrays(n, ctx.rng)
        obs, _ = env.set_tasks(asset, start, length)
        raw_return = torch.zeros(n, device=self.device)
        for t in range(buf.steps):
            obs = obs.float()
            dist = self.net.distribution(obs)
            action = self.net.head.sample(dist, ctx.gen)
            value = self.net.value(obs)
            next_obs, reward, terminated, _trunc, info = env.step(action)
            reward = reward.float()
            raw_return += reward
            buf.store(t, obs=obs, action=action, logp=dist.log_prob(action), value=value,
                      reward=reward * h.reward_scale, done=terminated.float())
            obs = next_obs
        last_value = self.net.value(info["final_obs"].float()) * (~terminated).float()
        adv, ret = compute_gae(buf.rewards, buf.values, buf.dones, last_value, h.gamma, h.gae_lambda)
        batch = {
            "obs": buf.obs.reshape(buf.steps * n, -1),
            "actions": buf.actions.reshape(buf.steps * n, *buf.actions.shape[2:]),
            "logp": buf.logp.reshape(-1),
            "advantages": adv.reshape(-1),
            "returns": ret.reshape(-1),
        }
        return PPORollout(batch, raw_return)

    def update(self, rollout: PPORollout, ctx: PPOFitContext) -> dict[str, float]:
        """`epochs x minibatches` clipped-PPO steps over the rollout's env-steps; metrics:
        `policy_loss`, `value_loss`, `entropy`, `approx_kl`, `clip_frac`, `grad_norm` (last
        epoch's means), `episode_return` / `episode_return_std` (over the envs)."""
        self.net.train()
        stats = ctx.update(partial(self._evaluate, rollout.batch), rollout.batch, self.net.parameters())
        returns = rollout.episode_return_N
        stats["episode_return"] = float(returns.mean())
        stats["episode_return_std"] = float(returns.std()) if self.hparams.num_envs > 1 else 0.0
        return stats

    def _evaluate(self, batch: dict[str, torch.Tensor],
                  idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(log-prob, entropy, value)` of the env-steps `idx` of `batch` under the current net."""
        dist = self.net.distribution(batch["obs"][idx])
        return dist.log_prob(batch["actions"][idx]), dist.entropy(), self.net.value(batch["obs"][idx])
