"""RL²: a GRU actor-critic trained with recurrent PPO over trials; adaptation is in-context.

A trial is `episodes_per_trial` consecutive episodes of `episode_length` decisions from ONE
regime segment (the sampler draws a window of `episodes_per_trial * episode_length` decisions
inside a segment; episode j covers its j-th stretch), or, with `trial_sampling="same_regime"`,
independent windows of one regime label (for regimes whose segments are shorter than a
trial), or, with `"stream"`, consecutive stretches that start in a regime and run on across
regime changes, as when trading. Position and equity restart at each episode (as the env does), the GRU hidden state is
carried across the episodes of a trial and reset between trials. The network's input at bar t is the observation, the previous position (/
max_position), the previous reward (x `reward_scale`) and a flag that the previous step ended
an episode. The trial is the unit of learning: returns are discounted across episode boundaries
and bootstrapping stops only at the trial's end.

Training (one iteration): `num_envs` trials stepped together with `VectorTradingEnv.set_tasks`
per episode, then `epochs x minibatches` PPO updates where a minibatch is a set of whole trials
and the GRU is re-run over the full trial (BPTT over T = episodes x length steps, batched across
trials; no Python loop over envs). Deployment (`deploy_context`): the hidden state runs through
every bar, or each decision ends a fresh trial over the most recent bars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.agents.networks import GRUActorCritic
from fin_meta.agents.ppo.core import RolloutBuffer, compute_gae, ppo_update
from fin_meta.agents.rl2.config import RL2Config
from fin_meta.agents.rl2.deploy import trial_positions
from fin_meta.agents.torch_agent import FitContext, TorchAgent
from fin_meta.errors import DataError
from fin_meta.seeding import numpy_generator
from fin_meta.tasks import TaskSampler

__all__ = ["RL2Agent", "RL2Config"]


class _RecurrentPolicy:
    """Deterministic RL² policy with its own hidden state (fresh when created)."""

    def __init__(self, net: GRUActorCritic, reward_scale: float, device: torch.device) -> None:
        self.net, self.scale = net, reward_scale
        self.h = net.initial_state(1, device)

    def act(self, obs_NO: torch.Tensor, feedback: Feedback) -> torch.Tensor:
        if self.h.shape[1] != obs_NO.shape[0]:
            self.h = self.net.initial_state(obs_NO.shape[0], obs_NO.device)
        x = self.net.inputs(obs_NO.float(), feedback.prev_position, feedback.prev_reward * self.scale,
                            feedback.done)
        feat, self.h = self.net(x.unsqueeze(0), self.h)
        return self.net.head.mode_of(feat[0])


class RL2Agent(TorchAgent):
    """RL² (see the module docstring). `RL2Agent(env_config, hparams)`."""

    algo: ClassVar[str] = "rl2"
    config_cls = RL2Config
    stateful: ClassVar[bool] = True
    hparams: RL2Config
    net: GRUActorCritic

    def build_network(self) -> GRUActorCritic:
        low, high = self.env_config.position_bounds
        h = self.hparams
        return GRUActorCritic(self.obs_size, self.env_config.action, low, high, encoder_size=h.encoder_size,
                              hidden_size=h.hidden_size, init_log_std=h.init_log_std)

    def step_policy(self) -> _RecurrentPolicy:
        return _RecurrentPolicy(self.net, self.hparams.reward_scale, self.device)

    @torch.no_grad()
    def positions(self, prices: pd.DataFrame) -> pd.Series:
        """Online, causal walk-forward (float64 targets, 0 on the warm-up bars). `deploy_context`
        `stream`: the hidden state runs through every bar; `trial`: each decision ends a fresh
        trial over the most recent bars (`fin_meta.agents.rl2.deploy`)."""
        if self.hparams.deploy_context == "stream":
            return super().positions(prices)
        self.net.eval()
        with self.threads():
            values = trial_positions(prices, self.env_config, self.step_policy, length=self.episode_length,
                                     episodes=self.hparams.episodes_per_trial, device=self.device)
        return pd.Series(values, index=prices.index, name=self.algo, dtype=np.float64)

    def make_iteration(
        self, sampler: TaskSampler, ctx: FitContext
    ) -> tuple[Callable[[int], dict[str, float]], int]:
        """One iteration = one trial in each of `num_envs` freshly sampled segment windows."""
        from fin_meta.envs.vector_env import VectorTradingEnv

        h, device, n = self.hparams, self.device, self.hparams.num_envs
        length, episodes = sampler.episode_length, h.episodes_per_trial
        steps = episodes * length
        consecutive = h.trial_sampling != "same_regime"  # stream trials are consecutive too
        if h.trial_sampling == "consecutive":
            try:  # fail early, naming the fix, when no segment holds a trial
                sampler.regimes_for(steps)
            except DataError as exc:
                raise DataError(f"{exc}; or set the RL² option trial_sampling: same_regime or stream") from None
        elif h.trial_sampling == "stream":
            sampler.sample_stream_arrays(1, numpy_generator(0), length=steps)  # fails early if none fits
        else:
            sampler.regimes_for(length)
        env = VectorTradingEnv(sampler.prices, n, device=device, seed=h.seed, config=self.env_config)
        buf = RolloutBuffer(steps, n, self.net.input_size, device=device,
                            discrete=self.env_config.action == "discrete")
        trial_end = torch.zeros(steps, n, device=device)
        trial_end[-1] = 1.0  # bootstrapping stops only at the end of the trial

        def one_iteration(_: int) -> dict[str, float]:
            self.net.eval()
            if h.trial_sampling == "stream":
                asset, start, _, regime = sampler.sample_stream_arrays(n, ctx.rng, length=steps)
            else:
                first_length = steps if consecutive else length
                asset, start, _, regime = sampler.sample_task_arrays(n, ctx.rng, length=first_length)
            hidden = self.net.initial_state(n, device)
            fb = Feedback.initial(n, device)
            raw = torch.zeros(episodes, n, device=device)
            with torch.no_grad():
                for j in range(episodes):
                    if consecutive:
                        obs, _ = env.set_tasks(asset, start + j * length, [length] * n)
                    else:
                        if j > 0:  # a fresh window of the same regime for every episode
                            asset, start, _, _ = sampler.sample_task_arrays(n, ctx.rng, regimes=regime)
                        obs, _ = env.set_tasks(asset, start, [length] * n)
                    for s in range(length):
                        x = self.net.inputs(obs.float(), fb.prev_position, fb.prev_reward * h.reward_scale,
                                            fb.done)
                        feat, hidden = self.net(x.unsqueeze(0), hidden)
                        dist = self.net.distribution(feat[0])
                        action = self.net.head.sample(dist, ctx.gen)
                        obs, reward, terminated, truncated, info = env.step(action)
                        reward = reward.float()
                        raw[j] += reward
                        buf.store(j * length + s, obs=x, action=action, logp=dist.log_prob(action),
                                  value=self.net.value(feat[0]), reward=reward * h.reward_scale,
                                  done=trial_end[j * length + s])
                        fb = Feedback(info["position"].float() / self.env_config.max_position, reward,
                                      (terminated | truncated).float(), fb.bar)
                adv, ret = compute_gae(buf.rewards, buf.values, trial_end, torch.zeros(n, device=device),
                                       h.gamma, h.gae_lambda)
            self.net.train()
            # whole trials are the units: tensors [N, T, ...]
            batch = {"logp": buf.logp.T, "advantages": adv.T, "returns": ret.T}
            x_all, act_all = buf.obs, buf.actions

            def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                feat, _ = self.net(x_all[:, idx], self.net.initial_state(len(idx), device))
                dist = self.net.distribution(feat)
                return dist.log_prob(act_all[:, idx]).T, dist.entropy().T, self.net.value(feat).T

            stats = ppo_update(evaluate, batch, ctx.optimizer, self.net.parameters(), weights=ctx.weights,
                               epochs=h.epochs, minibatches=h.minibatches, max_grad_norm=h.max_grad_norm,
                               generator=ctx.gen, target_kl=h.target_kl)
            per_episode = raw.mean(dim=1)
            stats["episode_return"] = float(per_episode.mean())
            stats["first_episode_return"] = float(per_episode[0])
            stats["last_episode_return"] = float(per_episode[-1])
            stats["trial_return"] = float(raw.sum(0).mean())
            return stats

        return one_iteration, steps * n
