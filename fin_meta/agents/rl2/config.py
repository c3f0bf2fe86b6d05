"""Hyperparameters of RL² and of the recurrent PPO control `rppo` (torch-free, so configs validate
fast); unknown keys are rejected."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fin_meta.agents.ppo.config import PPOLossConfig

__all__ = ["RL2Config", "RecurrentPPOConfig"]


class RL2Config(PPOLossConfig):
    """RL²: a GRU actor-critic trained with recurrent PPO over trials of consecutive episodes."""

    num_envs: int = Field(128, ge=1)
    """Parallel trials per iteration (each env runs one trial)."""
    episodes_per_trial: int = Field(4, ge=1)
    """Episodes per trial; the hidden state is carried across them and reset between trials."""
    trial_sampling: Literal["consecutive", "same_regime", "stream"] = "consecutive"
    """`consecutive`: a trial is one window of `episodes_per_trial x episode_length` decisions
    drawn by the task sampler, cut into consecutive episodes: with its default `windows: start`
    the window starts in a regime and runs on across whatever follows (the same draw as
    `stream`); with the legacy `windows: inside` it lies inside ONE segment (conditioned on its
    own future). `stream`: the start-conditioned draw whatever the sampler's `windows`.
    `same_regime` (legacy, leaks with hindsight labels): each episode is an independent window
    starting in the trial's regime, so episodes are linked by a label that reads bars after each
    start (S&P 500 1999-2012, 63-bar episodes: pair correlation 0.19, vs 0.68 with inside
    windows and 0.00 for unlabelled pairs); harmless with causal task labels."""
    trial_iterations: int = Field(1, ge=1)
    """Iterations one trial spans (`stream` sampling only). 1: every iteration draws fresh
    trials from a zero hidden state. K > 1: each env plays a start-conditioned stream of K x
    `episodes_per_trial x episode_length` decisions, one such stretch an iteration, with its
    hidden state and feedback carried into the next iteration (truncated BPTT over each
    stretch, from the state the previous one left), so the policy learns from contexts up to K
    times as long as a rollout, as it trades (`deploy_context: stream` runs through whole
    paths). Envs start staggered, so every iteration mixes fresh and long contexts."""
    deploy_context: Literal["stream", "trial"] = "stream"
    """How the agent keeps context when trading (`positions`): `stream` carries the GRU state
    through every bar; `trial` takes each decision at the end of a fresh trial over the last
    `episodes_per_trial x episode_length` bars, the context it was trained on (replayed in one
    batched rollout)."""
    cell: Literal["gru", "lstm"] = "gru"
    """The recurrent core: `gru`, or `lstm` (the same interface and widths; about 3x faster to
    train on CPU, where PyTorch runs an LSTM's forward and backward in fused oneDNN kernels)."""
    hidden_size: int = Field(64, ge=1)
    """Hidden size of the recurrent core (GRU or LSTM)."""
    encoder_size: int = Field(64, ge=1)
    """Width of the input layer before the GRU (observation, previous action, reward, done)."""
    gamma: float = Field(0.99, ge=0, le=1)
    """Discount factor per bar (applied across episode boundaries inside a trial)."""
    separate_critic: bool = False
    """Give the critic its own encoder and GRU. Shared (False), the value loss's gradient reaches
    the policy's recurrent trunk (on `synthetic:regimes`, 156x the policy's own gradient there
    after one iteration, 10x after 20: `benchmarks/rl2_gradients.py`); separate, the policy's
    trunk learns from the policy loss (and the belief loss) alone, at twice the GRU compute in
    training (deployment runs the actor only)."""
    belief_coef: float = Field(0.0, ge=0)
    """Weight of the belief-supervision loss (> 0 turns it on): a linear head on the policy's GRU
    state predicts the training task's regime label at every step (cross-entropy; Humplik et
    al. 2019). Training only: `positions` never needs labels."""
    belief_gate: bool = False
    """Make the policy belief-conditioned (needs `belief_coef > 0`): one linear policy head per
    regime class over the recurrent features and the bar's input, mixed by the belief head's
    probabilities (detached), in the spirit of Humplik et al. 2019's belief-input policies; the
    belief still comes from the context alone at deployment. Lets the policy flip a trade with
    the inferred regime (follow in momentum, fade in reversal) without the recurrent core
    having to learn that product itself."""
    gate_teacher_iterations: int = Field(0, ge=0)
    """With `belief_gate`: for the first N iterations the gate also reads the training task's
    true label (weight 1 - i/N on it, the rest on the belief), a curriculum from a clean regime
    signal to the inferred one; 0 (default): the belief alone. Training only: deployment gates
    by the belief."""
    bound_coef: float = Field(0.0, ge=0)
    """Weight of a penalty on the policy's Gaussian mean outside the action bounds (continuous
    actions; > 0 turns it on): mean of relu(|mean| - bound)^2. Beyond a bound the position is
    clipped, so the action no longer changes the reward and the policy gradient cannot teach a
    trade there; the penalty keeps the mean where it matters. 0 (default): none."""
    estimator: Literal["ppo", "pathwise"] = "ppo"
    """How the policy learns. `ppo` (default): recurrent PPO on sampled actions. `pathwise`
    (continuous actions): rollouts play the deterministic policy (the clipped mean, as when
    trading) and each update ascends the exact gradient of the trials' mean net log return
    (training cost pressure included, x `reward_scale`) with respect to those positions, by
    BPTT through the recurrent core: a trader's positions do not move prices, so a bar's return
    is a known differentiable function of the position (Moody & Saffell's direct
    reinforcement; MAML's default estimator). The feedback inputs (previous position and reward)
    are taken as the rollout played them; the critic is not trained; `gamma`, `gae_lambda`,
    `clip_coef` and the entropy settings do not apply."""
    belief_classes: int | None = Field(None, ge=2)
    """Regime labels the belief head predicts (0 .. belief_classes-1). None: set by the first
    `fit` from the task sampler (its largest regime label + 1) and saved with the agent."""

    @model_validator(mode="after")
    def _consistent_options(self) -> RL2Config:
        if self.trial_iterations > 1 and self.trial_sampling != "stream":
            raise ValueError(f"trial_iterations={self.trial_iterations} carries a trial over iterations, which "
                             f"needs trial_sampling: stream (not {self.trial_sampling!r}); or set trial_iterations: 1")
        if self.belief_gate and self.belief_coef <= 0:
            raise ValueError("belief_gate mixes the policy by the belief head, which needs belief_coef > 0 "
                             "(e.g. belief_coef: 0.1); or set belief_gate: false")
        if self.gate_teacher_iterations and not self.belief_gate:
            raise ValueError("gate_teacher_iterations schedules the belief gate's teacher: set belief_gate: true "
                             "(with belief_coef > 0), or gate_teacher_iterations: 0")
        return self


class RecurrentPPOConfig(RL2Config):
    """`rppo`, the recurrent control (memory without meta-learning): the GRU policy sees only
    the observation (no previous action, reward or done flag), trains on start-conditioned
    streams of `episodes_per_trial x episode_length` bars played as ONE episode with the hidden
    state carried through, and trades with the state carried through every bar."""

    episodes_per_trial: int = Field(4, ge=1)
    """Stream length in episodes: a training stream is `episodes_per_trial x episode_length`
    bars, one episode (position and equity run on), bootstrapping only at its end."""
    trial_sampling: Literal["stream"] = "stream"
    """Always `stream`: windows that start in a regime and run on across regime changes."""
    deploy_context: Literal["stream"] = "stream"
    """Always `stream`: the hidden state runs through every bar."""
