"""Pooled PPO: one MLP actor-critic trained on tasks of every regime, no meta-learning — the
baseline the meta agents must beat.

One iteration: draw `num_envs` task windows from the sampler (regime-balanced), play one
episode of `episode_length` decisions in each with a `VectorTradingEnv`, bootstrap the value of
the truncated end from the final observation, GAE, then `epochs x minibatches` clipped-PPO
updates over the `num_envs x episode_length` env-steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.agents.networks import MLPActorCritic
from fin_meta.agents.ppo.config import PPOConfig
from fin_meta.agents.ppo.core import RolloutBuffer, compute_gae, ppo_update
from fin_meta.agents.torch_agent import FitContext, TorchAgent
from fin_meta.tasks import TaskSampler

__all__ = ["PPOAgent", "PPOConfig"]


class _MeanPolicy:
    """Deterministic MLP policy: the clipped mean (continuous) / most likely class (discrete)."""

    def __init__(self, net: MLPActorCritic) -> None:
        self.net = net

    def act(self, obs_NO: torch.Tensor, feedback: Feedback) -> torch.Tensor:
        del feedback  # memoryless: the held position is already in the observation
        return self.net.head.mode_of(self.net.actor_body(self.net.norm(obs_NO)))


class PPOAgent(TorchAgent):
    """Pooled PPO baseline (see the module docstring). `PPOAgent(env_config, hparams)`."""

    algo: ClassVar[str] = "ppo"
    config_cls = PPOConfig
    stateful: ClassVar[bool] = False
    hparams: PPOConfig
    net: MLPActorCritic

    def build_network(self) -> MLPActorCritic:
        low, high = self.env_config.position_bounds
        h = self.hparams
        return MLPActorCritic(self.obs_size, h.hidden_sizes, self.env_config.action, low, high,
                              init_log_std=h.init_log_std, activation=h.activation)

    def step_policy(self) -> _MeanPolicy:
        return _MeanPolicy(self.net)

    def make_iteration(
        self, sampler: TaskSampler, ctx: FitContext
    ) -> tuple[Callable[[int], dict[str, float]], int]:
        """One iteration = one episode in each of `num_envs` freshly sampled task windows."""
        from fin_meta.envs.vector_env import VectorTradingEnv

        h, device, steps = self.hparams, self.device, sampler.episode_length
        env = VectorTradingEnv(sampler.prices, h.num_envs, device=device, seed=h.seed,
                               config=self.env_config, final_obs=True)
        buf = RolloutBuffer(steps, h.num_envs, self.obs_size, device=device,
                            discrete=self.env_config.action == "discrete")

        def one_iteration(_: int) -> dict[str, float]:
            self.net.eval()
            asset, start, length, _regime = sampler.sample_task_arrays(h.num_envs, ctx.rng)
            obs, _ = env.set_tasks(asset, start, length)
            raw_return = torch.zeros(h.num_envs, device=device)
            with torch.no_grad():
                for t in range(steps):
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
            self.net.train()
            flat = {
                "obs": buf.obs.reshape(steps * h.num_envs, -1),
                "actions": buf.actions.reshape(-1),
                "logp": buf.logp.reshape(-1),
                "advantages": adv.reshape(-1),
                "returns": ret.reshape(-1),
            }

            def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                dist = self.net.distribution(flat["obs"][idx])
                return dist.log_prob(flat["actions"][idx]), dist.entropy(), self.net.value(flat["obs"][idx])

            stats = ppo_update(evaluate, flat, ctx.optimizer, self.net.parameters(), weights=ctx.weights,
                               epochs=h.epochs, minibatches=h.minibatches, max_grad_norm=h.max_grad_norm,
                               generator=ctx.gen, target_kl=h.target_kl)
            stats["episode_return"] = float(raw_return.mean())
            stats["episode_return_std"] = float(raw_return.std()) if h.num_envs > 1 else 0.0
            return stats

        return one_iteration, steps * h.num_envs
