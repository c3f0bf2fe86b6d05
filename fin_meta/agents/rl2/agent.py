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

With `trial_iterations` K > 1 a trial spans K iterations: each env's stream, hidden state and
feedback carry from one iteration's rollout into the next (`fin_meta.agents.rl2.streams`;
truncated BPTT over each rollout), so training sees contexts as long as trading does.

Options: `separate_critic` gives the critic its own encoder and GRU; `belief_coef > 0` adds the
belief-supervision loss (`fin_meta.agents.rl2.belief`), and `belief_gate` mixes one policy per
regime class by that belief (`gate_teacher_iterations`: the true label mixed in early on);
`bound_coef` penalises a policy mean beyond the action bounds. `estimator: pathwise` replaces PPO:
rollouts play the deterministic policy and the update ascends the exact gradient of the trials'
net log return in the positions (`fin_meta.agents.rl2.pathwise`). The recurrent PPO control `rppo`
(`fin_meta.agents.rl2.recurrent_ppo`) reuses this machinery with class switches: no feedback
inputs (`feedback_inputs`) and one episode per stream (`one_episode`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.agents.networks import GRUActorCritic, bound_loss
from fin_meta.agents.ppo.core import PPOFitContext, compute_gae, minibatch_update
from fin_meta.agents.rl2.belief import (
    add_belief_head,
    attach_belief_head,
    belief_loss,
    belief_stats,
    teacher_gate,
    teacher_weight,
    trial_labels,
)
from fin_meta.agents.rl2.config import RL2Config
from fin_meta.agents.rl2.deploy import trial_positions
from fin_meta.agents.rl2.pathwise import trial_log_returns
from fin_meta.agents.rl2.streams import CarriedStreams
from fin_meta.agents.torch_agent import TorchAgent
from fin_meta.envs.actions import action_bounds
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import ConfigError, DataError
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
        feat, self.h = self.net(x.unsqueeze(0), self.h, critic=False)
        return self.net.head.mode_of(self.net.policy_features(feat[0], x))


@dataclass
class TrialRollout:
    """One iteration's trials, whole trials as the PPO units: `batch` holds `logp`,
    `advantages`, `returns` `[N, T]`; `inputs_TNI` / `actions_TN` are the recurrent inputs and
    actions to re-run the GRU over; `episode_return_JN` the summed unscaled reward of episode j
    (of `episode_length` bars) of each trial; `labels_TN` the regime label of every step (-1:
    none) when the belief head trains, and `belief` its statistics at collection."""

    batch: dict[str, torch.Tensor]
    inputs_TNI: torch.Tensor
    actions_TN: torch.Tensor
    episode_return_JN: torch.Tensor
    labels_TN: torch.Tensor | None = None
    belief: dict[str, float] = field(default_factory=dict)
    hidden0: torch.Tensor | None = None
    """The hidden state `[1, N, S]` each trial's stretch started from (None: zero, a fresh trial)."""
    teacher: float = 0.0
    """Weight of the true label in the gate at collection (`gate_teacher_iterations`)."""
    r_next_TN: torch.Tensor | None = None
    """`estimator: pathwise`: the return r[t+1] (float64) each step's position was held over."""
    episodes: list[tuple[int, int]] = field(default_factory=list)
    """`(first step, end step)` of each episode of the trials (position restarts flat at each)."""


class RL2Agent(TorchAgent):
    """RL² (see the module docstring). `RL2Agent(env_config, hparams)`."""

    algo: ClassVar[str] = "rl2"
    config_cls = RL2Config
    stateful: ClassVar[bool] = True
    feedback_inputs: ClassVar[bool] = True
    """The GRU sees the previous position, reward and done flag besides the observation."""
    one_episode: ClassVar[bool] = False
    """A trial is one episode (position and equity run on) instead of `episodes_per_trial`."""
    hparams: RL2Config
    net: GRUActorCritic
    _streams: CarriedStreams | None = None
    """Each env's stream carried across iterations (`trial_iterations` > 1; training state)."""

    def build_network(self) -> GRUActorCritic:
        low, high = action_bounds(self.env_config)
        h = self.hparams
        net = GRUActorCritic(self.obs_size, self.env_config.action, low, high, encoder_size=h.encoder_size,
                             hidden_size=h.hidden_size, init_log_std=h.init_log_std,
                             feedback=self.feedback_inputs, separate_critic=h.separate_critic, cell=h.cell)
        if h.belief_coef > 0 and h.belief_classes is not None:  # else the first fit adds it
            add_belief_head(net, h.belief_classes, h.seed, gate=h.belief_gate)
        return net

    def extra_training_state(self) -> dict[str, Any]:
        """The carried streams, when there are any (see `TorchAgent.extra_training_state`)."""
        return {} if self._streams is None else {"carried_streams": self._streams.state()}

    def restore_extra_training_state(self, state: Mapping[str, Any]) -> None:
        if "carried_streams" in state:
            self._streams = CarriedStreams.from_state(state["carried_streams"], self.device)

    def step_policy(self) -> _RecurrentPolicy:
        return _RecurrentPolicy(self.net, self.hparams.reward_scale, self.device)

    @torch.no_grad()
    def positions_batch(self, frames: Sequence[pd.DataFrame]) -> list[pd.Series]:
        """Online, causal walk-forward (float64 positions, 0 on the warm-up bars). `deploy_context`
        `stream`: the hidden state runs through every bar (frames of equal length walk together);
        `trial`: each decision ends a fresh trial over the most recent bars
        (`fin_meta.agents.rl2.deploy`), frame by frame."""
        if self.hparams.deploy_context == "stream":
            return super().positions_batch(frames)
        self.net.eval()
        out = []
        with self.threads():
            for prices in frames:
                values = trial_positions(prices, self.env_config, self.step_policy, length=self.episode_length,
                                         episodes=self.hparams.episodes_per_trial, device=self.device)
                out.append(pd.Series(values, index=prices.index, name=self.algo, dtype=np.float64))
        return out

    def fit_context(self, sampler: TaskSampler, rng: np.random.Generator, gen: torch.Generator) -> PPOFitContext:
        """`num_envs` envs over the sampler's prices, a buffer of one trial in each; fails early,
        naming the fix, when the sampler holds no window for the chosen `trial_sampling`."""
        for name, on in (("bound_coef", self.hparams.bound_coef > 0),
                         ("estimator: pathwise", self.hparams.estimator == "pathwise")):
            if on and self.env_config.action != "continuous":
                raise ConfigError(f"{name} needs a continuous action; this env's action is "
                                  f"{self.env_config.action!r}: use action: continuous (or drop {name})")
        if self.hparams.belief_coef > 0:
            self.hparams = attach_belief_head(self.net, self.hparams, sampler)  # before the optimiser
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

    def _episodes(self, sampler: TaskSampler, rng: np.random.Generator,
                  steps: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """`(asset, start, decisions)` of each episode of this iteration's `num_envs` trials of
        `steps` decisions (see the module docstring)."""
        h, n, length = self.hparams, self.hparams.num_envs, sampler.episode_length
        if h.trial_sampling == "same_regime":  # a fresh window of the first one's regime per episode
            asset, start, _, regime = sampler.sample_task_arrays(n, rng, length=length)
            draws = [(asset, start)] + [sampler.sample_task_arrays(n, rng, regimes=regime)[:2]
                                        for _ in range(h.episodes_per_trial - 1)]
            return [(a, s, length) for a, s in draws]
        draw = sampler.sample_stream_arrays if h.trial_sampling == "stream" else sampler.sample_task_arrays
        asset, start, _, _ = draw(n, rng, length=steps)
        return self._split(asset, start, steps, length)

    def _split(self, asset: np.ndarray, start: np.ndarray, steps: int,
               length: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """A stretch of `steps` decisions from `start` as its episodes of `length` (one episode
        when `one_episode`)."""
        if self.one_episode:
            return [(asset, start, steps)]
        return [(asset, start + j * length, length) for j in range(steps // length)]

    def _carried(self, sampler: TaskSampler, rng: np.random.Generator,
                 steps: int) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], torch.Tensor, Feedback]:
        """This iteration's stretch of every env's carried stream (`trial_iterations` > 1), its
        starting hidden state and feedback (`fin_meta.agents.rl2.streams`); streams begin anew
        when there are none yet or they were drawn from another sampler."""
        h, n = self.hparams, self.hparams.num_envs
        if self._streams is None or not self._streams.fits(sampler, steps, n):
            self._streams = CarriedStreams.begin(sampler, rng, n=n, k=h.trial_iterations, steps=steps,
                                                 hidden=self.net.initial_state(n, self.device))
        asset, start = self._streams.stretch(sampler, rng, h.trial_iterations)
        return self._split(asset, start, steps, sampler.episode_length), self._streams.hidden, self._streams.feedback

    @torch.no_grad()
    def collect(self, sampler: TaskSampler, ctx: PPOFitContext) -> TrialRollout:
        """One trial in each of `num_envs` freshly sampled windows, or with `trial_iterations` >
        1 the next stretch of each env's carried stream (see the module docstring), with GAE
        across the stretch's episodes (bootstrapping stops at its end)."""
        self.net.eval()
        h, env, buf, n = self.hparams, ctx.env, ctx.buffer, self.hparams.num_envs
        length, device = sampler.episode_length, self.device
        trial_end = torch.zeros(buf.steps, n, device=device)
        trial_end[-1] = 1.0  # bootstrapping stops only at the end of the trial
        carried = h.trial_iterations > 1
        if carried:
            episodes, hidden, fb = self._carried(sampler, ctx.rng, buf.steps)
        else:
            episodes = self._episodes(sampler, ctx.rng, buf.steps)
            hidden, fb = self.net.initial_state(n, device), Feedback.initial(n, device)
        hidden0 = hidden if carried else None  # None: the update starts from zero
        raw = torch.zeros(h.episodes_per_trial, n, device=device)
        logits = [] if h.belief_coef > 0 else None
        labels_TN = None if logits is None else trial_labels(sampler, episodes, h.belief_classes, device)
        teacher = teacher_weight(self.iterations_trained, h.gate_teacher_iterations)
        pathwise = h.estimator == "pathwise"
        r_next = torch.zeros(buf.steps, n, dtype=torch.float64, device=device) if pathwise else None
        step, bounds = 0, []
        for asset, start, decisions in episodes:
            obs, _ = env.set_tasks(asset, start, [decisions] * n)
            bounds.append((step, step + decisions))
            for _ in range(decisions):
                x = self.net.inputs(obs.float(), fb.prev_position, fb.prev_reward * h.reward_scale, fb.done)
                feat, hidden = self.net(x.unsqueeze(0), hidden, critic=not pathwise)
                probs = teacher_gate(self.net.gate_probs(feat[0]), labels_TN[step], teacher) if teacher else None
                dist = self.net.distribution(feat[0], x, probs)
                if pathwise:  # the deterministic policy, as it trades
                    action, r_next[step] = self.net.head.mode(dist), env.next_returns()
                else:
                    action = self.net.head.sample(dist, ctx.gen)
                obs, reward, terminated, truncated, info = env.step(action)
                reward = reward.float()
                raw[step // length] += reward
                buf.store(step, obs=x, action=action, logp=dist.log_prob(action), value=self.net.value(feat[0]),
                          reward=reward * h.reward_scale, done=trial_end[step])
                fb = Feedback(info["position"].float() / self.env_config.max_position, reward,
                              (terminated | truncated).float(), fb.bar)
                if logits is not None:
                    logits.append(self.net.belief_logits(feat[0]))
                step += 1
        adv, ret = compute_gae(buf.rewards, buf.values, trial_end, torch.zeros(n, device=device),
                               h.gamma, h.gae_lambda)
        batch = {"logp": buf.logp.T, "advantages": adv.T, "returns": ret.T}
        rollout = TrialRollout(batch, buf.obs, buf.actions, raw, hidden0=hidden0, teacher=teacher,
                               r_next_TN=r_next, episodes=bounds)
        if carried:
            self._streams.advance(hidden, fb)
        if logits is not None:
            rollout.labels_TN = labels_TN
            rollout.belief = belief_stats(torch.stack(logits), labels_TN)
        return rollout

    def update(self, rollout: TrialRollout, ctx: PPOFitContext) -> dict[str, float]:
        """`epochs x minibatches` PPO steps over whole trials; metrics: `policy_loss`,
        `value_loss`, `entropy`, `approx_kl`, `clip_frac`, `grad_norm` (last epoch's means),
        `episode_return` (mean over episodes and trials), `first_episode_return` /
        `last_episode_return` (the trial's first / last episode), `trial_return` (a trial's total);
        with the belief head `aux_loss` (its weighted loss, last epoch) and `belief_loss` /
        `belief_accuracy` (cross-entropy in nats / accuracy on the collected trials, before the update)."""
        self.net.train()
        if self.hparams.estimator == "pathwise":
            h = self.hparams
            stats = minibatch_update(partial(self._pathwise_loss, rollout), self.hparams.num_envs, ctx.optimizer,
                                     self.net.parameters(), epochs=h.epochs, minibatches=h.minibatches,
                                     max_grad_norm=h.max_grad_norm, generator=ctx.gen)
        else:
            stats = ctx.update(partial(self._evaluate, rollout), rollout.batch, self.net.parameters())
        per_episode = rollout.episode_return_JN.mean(dim=1)
        stats["episode_return"] = float(per_episode.mean())
        stats["first_episode_return"] = float(per_episode[0])
        stats["last_episode_return"] = float(per_episode[-1])
        stats["trial_return"] = float(rollout.episode_return_JN.sum(0).mean())
        return {**stats, **rollout.belief}

    def _rerun(self, rollout: TrialRollout, idx: torch.Tensor) -> tuple[torch.Tensor, torch.distributions.Distribution,
                                                                         list[torch.Tensor]]:
        """The recurrent core re-run over the trials `idx`: its features `[T, N', S]`, the
        action distribution (the gate as collected) and the weighted auxiliary losses (belief
        head, `bound_coef`; none: empty)."""
        h0 = self.net.initial_state(len(idx), self.device) if rollout.hidden0 is None else rollout.hidden0[:, idx]
        x = rollout.inputs_TNI[:, idx]
        feat, _ = self.net(x, h0, critic=self.hparams.estimator == "ppo")  # pathwise: no critic to train
        probs = (teacher_gate(self.net.gate_probs(feat), rollout.labels_TN[:, idx], rollout.teacher)
                 if rollout.teacher else None)
        dist = self.net.distribution(feat, x, probs)
        aux = []
        if rollout.labels_TN is not None:
            aux.append(self.hparams.belief_coef * belief_loss(self.net.belief_logits(feat), rollout.labels_TN[:, idx]))
        if self.hparams.bound_coef > 0:  # continuous actions only (checked in fit_context)
            aux.append(self.hparams.bound_coef * bound_loss(dist.mean, self.net.head))
        return feat, dist, aux

    def _evaluate(self, rollout: TrialRollout, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`(log-prob, entropy, value)` `[N', T]` of the trials `idx`, the GRU re-run over them;
        with the belief head and / or `bound_coef`, the weighted sum of their losses as a fourth
        (auxiliary loss)."""
        feat, dist, aux = self._rerun(rollout, idx)
        out = (dist.log_prob(rollout.actions_TN[:, idx]).T, dist.entropy().T, self.net.value(feat).T)
        return (*out, sum(aux)) if aux else out

    def _pathwise_loss(self, rollout: TrialRollout, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`estimator: pathwise`: minus `reward_scale` x the mean net log return the trials `idx`
        earn at the re-run deterministic positions (`fin_meta.agents.rl2.pathwise`), plus the
        auxiliary losses; statistics `policy_loss` (that first term) and `aux_loss`."""
        _, dist, aux = self._rerun(rollout, idx)
        g = trial_log_returns(self.net.head.mode(dist), rollout.r_next_TN[:, idx], rollout.episodes, self.env_config)
        policy_loss = -self.hparams.reward_scale * g.mean().float()
        stats = {"policy_loss": policy_loss.detach()}
        if aux:
            stats["aux_loss"] = sum(aux).detach()
        return policy_loss + sum(aux), stats
