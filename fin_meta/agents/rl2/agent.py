"""RL²: a GRU actor-critic trained with recurrent PPO over trials; adaptation is in-context.

A trial is `episodes_per_trial` consecutive episodes of `episode_length` decisions: the sampler
draws a window of `episodes_per_trial * episode_length` decisions and episode j covers its j-th
stretch. `trial_sampling="consecutive"` takes the sampler's own draw (by default it starts in a
regime and runs on across regime changes, as when trading; a legacy `windows="inside"` sampler
keeps it inside one segment), `"stream"` always the start-conditioned draw, and the legacy
`"same_regime"` independent windows starting in one regime label (linked by hindsight labels:
see `RL2Config.trial_sampling`). Position and equity restart at each episode (as the env does), the GRU hidden state is
carried across the episodes of a trial and reset between trials. The network's input at bar t is the observation, the previous position (/
max_position), the previous reward (x `reward_scale`) and a flag that the previous step ended
an episode. The trial is the unit of learning: returns are discounted across episode boundaries
and bootstrapping stops only at the trial's end.

Training (one iteration): `collect` steps `num_envs` trials together with
`VectorTradingEnv.set_tasks` per episode; `update` runs `epochs x minibatches` PPO updates where
a minibatch is a set of whole trials and the GRU is re-run over the full trial (BPTT over
T = episodes x length steps, batched across trials; no Python loop over envs). Deployment (`deploy_context`): the hidden state runs through
every bar, or each decision ends a fresh trial over the most recent bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.agents.networks import GRUActorCritic
from fin_meta.agents.ppo.core import PPOFitContext, compute_gae
from fin_meta.agents.rl2.config import RL2Config
from fin_meta.agents.rl2.deploy import trial_positions
from fin_meta.agents.torch_agent import TorchAgent
from fin_meta.envs.actions import action_bounds
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import DataError
from fin_meta.seeding import numpy_generator
from fin_meta.tasks import TaskSampler

__all__ = ["RL2Agent", "RL2Config", "TrialRollout"]


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


@dataclass
class TrialRollout:
    """One iteration's trials, whole trials as the PPO units: `batch` holds `logp`,
    `advantages`, `returns` `[N, T]`; `inputs_TNI` / `actions_TN` are the recurrent inputs and
    actions to re-run the GRU over; `episode_return_JN` the summed unscaled reward of episode j
    of each trial."""

    batch: dict[str, torch.Tensor]
    inputs_TNI: torch.Tensor
    actions_TN: torch.Tensor
    episode_return_JN: torch.Tensor


class RL2Agent(TorchAgent):
    """RL² (see the module docstring). `RL2Agent(env_config, hparams)`."""

    algo: ClassVar[str] = "rl2"
    config_cls = RL2Config
    stateful: ClassVar[bool] = True
    hparams: RL2Config
    net: GRUActorCritic

    def build_network(self) -> GRUActorCritic:
        low, high = action_bounds(self.env_config)
        h = self.hparams
        return GRUActorCritic(self.obs_size, self.env_config.action, low, high, encoder_size=h.encoder_size,
                              hidden_size=h.hidden_size, init_log_std=h.init_log_std)

    def step_policy(self) -> _RecurrentPolicy:
        return _RecurrentPolicy(self.net, self.hparams.reward_scale, self.device)

    @torch.no_grad()
    def positions(self, prices: pd.DataFrame) -> pd.Series:
        """Online, causal walk-forward (float64 positions, 0 on the warm-up bars). `deploy_context`
        `stream`: the hidden state runs through every bar; `trial`: each decision ends a fresh
        trial over the most recent bars (`fin_meta.agents.rl2.deploy`)."""
        if self.hparams.deploy_context == "stream":
            return super().positions(prices)
        self.net.eval()
        with self.threads():
            values = trial_positions(prices, self.env_config, self.step_policy, length=self.episode_length,
                                     episodes=self.hparams.episodes_per_trial, device=self.device)
        return pd.Series(values, index=prices.index, name=self.algo, dtype=np.float64)

    def fit_context(self, sampler: TaskSampler, rng: np.random.Generator, gen: torch.Generator) -> PPOFitContext:
        """`num_envs` envs over the sampler's prices, a buffer of one trial in each; fails early,
        naming the fix, when the sampler holds no window for the chosen `trial_sampling`."""
        h = self.hparams
        steps = h.episodes_per_trial * sampler.episode_length
        if h.trial_sampling == "consecutive":
            try:
                sampler.regimes_for(steps)
            except DataError as exc:
                if sampler.windows != "inside":
                    raise
                raise DataError(f"{exc}; or set the RL² option trial_sampling: same_regime or stream") from None
        elif h.trial_sampling == "stream":
            sampler.sample_stream_arrays(1, numpy_generator(0), length=steps)  # fails early if none fits
        else:
            sampler.regimes_for(sampler.episode_length)
        env = VectorTradingEnv(sampler.prices, h.num_envs, device=self.device, seed=h.seed, config=self.env_config,
                               training=True)
        return PPOFitContext.create(h, env, steps=steps, input_size=self.net.input_size,
                                    rng=rng, gen=gen, optimizer=self.optimizer())

    @torch.no_grad()
    def collect(self, sampler: TaskSampler, ctx: PPOFitContext) -> TrialRollout:
        """One trial in each of `num_envs` freshly sampled windows (see the module docstring),
        with GAE across the trial's episodes."""
        self.net.eval()
        h, env, buf, n = self.hparams, ctx.env, ctx.buffer, self.hparams.num_envs
        length, episodes, device = sampler.episode_length, h.episodes_per_trial, self.device
        consecutive = h.trial_sampling != "same_regime"  # stream trials are consecutive too
        trial_end = torch.zeros(buf.steps, n, device=device)
        trial_end[-1] = 1.0  # bootstrapping stops only at the end of the trial
        if h.trial_sampling == "stream":
            asset, start, _, regime = sampler.sample_stream_arrays(n, ctx.rng, length=buf.steps)
        else:
            first_length = buf.steps if consecutive else length
            asset, start, _, regime = sampler.sample_task_arrays(n, ctx.rng, length=first_length)
        hidden = self.net.initial_state(n, device)
        fb = Feedback.initial(n, device)
        raw = torch.zeros(episodes, n, device=device)
        for j in range(episodes):
            if consecutive:
                obs, _ = env.set_tasks(asset, start + j * length, [length] * n)
            else:
                if j > 0:  # a fresh window of the same regime for every episode
                    asset, start, _, _ = sampler.sample_task_arrays(n, ctx.rng, regimes=regime)
                obs, _ = env.set_tasks(asset, start, [length] * n)
            for s in range(length):
                x = self.net.inputs(obs.float(), fb.prev_position, fb.prev_reward * h.reward_scale, fb.done)
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
        batch = {"logp": buf.logp.T, "advantages": adv.T, "returns": ret.T}
        return TrialRollout(batch, buf.obs, buf.actions, raw)

    def update(self, rollout: TrialRollout, ctx: PPOFitContext) -> dict[str, float]:
        """`epochs x minibatches` PPO steps over whole trials; metrics: `policy_loss`,
        `value_loss`, `entropy`, `approx_kl`, `clip_frac`, `grad_norm` (last epoch's means),
        `episode_return` (mean over episodes and trials), `first_episode_return` /
        `last_episode_return` (the trial's first / last episode), `trial_return` (a trial's total)."""
        self.net.train()
        stats = ctx.update(partial(self._evaluate, rollout), rollout.batch, self.net.parameters())
        per_episode = rollout.episode_return_JN.mean(dim=1)
        stats["episode_return"] = float(per_episode.mean())
        stats["first_episode_return"] = float(per_episode[0])
        stats["last_episode_return"] = float(per_episode[-1])
        stats["trial_return"] = float(rollout.episode_return_JN.sum(0).mean())
        return stats

    def _evaluate(self, rollout: TrialRollout,
                  idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(log-prob, entropy, value)` `[N', T]` of the trials `idx`, the GRU re-run over them."""
        feat, _ = self.net(rollout.inputs_TNI[:, idx], self.net.initial_state(len(idx), self.device))
        dist = self.net.distribution(feat)
        return dist.log_prob(rollout.actions_TN[:, idx]).T, dist.entropy().T, self.net.value(feat).T
