"""Policy and value networks: an MLP actor-critic (pooled PPO, usable by MAML) and a GRU
actor-critic (RL² and the recurrent PPO control), sharing one action head.

Actions (`fin_meta.envs.actions`): `continuous` -> a Gaussian over the target position (or, with
a no-trade band, over (target, half-width): a diagonal Gaussian of size 2) with a
state-independent log std; the env clips samples to its bounds, the deterministic action is the
mean clipped to `[low, high]` (per component). `discrete` -> a categorical over `{0, 1, 2}` =
`{short, flat, long}`; `discrete_hold` adds 3 = hold.
Sampling takes an explicit `torch.Generator` (no global random state).

Suffixes: N batch, T time, O observation size, I recurrent input size, H hidden size, S recurrent
state size (H, or 2H with a separate critic), C regime classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fin_meta.envs.actions import DISCRETE_CLASSES

__all__ = [
    "Normalizer",
    "trunk",
    "mlp",
    "ActionHead",
    "bound_loss",
    "MLPActorCritic",
    "GRUActorCritic",
]

Bound = float | Sequence[float]
"""A continuous action's bound: one float, or one per component (a no-trade band's (target, h))."""


class Normalizer(nn.Module):
    """Fixed affine input scaling `(x - mean) / std` with statistics set once from training data
    (saved with the weights, never updated at deployment: no look-ahead)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    def set(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-8) -> None:
        """Set the statistics (std floored at `eps`)."""
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std).clamp_min(eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def trunk(in_size: int, hidden: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """Hidden layers `in -> hidden...`, each Linear followed by `activation` (orthogonal init)."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    sizes = [in_size, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [_init(nn.Linear(a, b), 2**0.5), act()]
    return nn.Sequential(*layers)


def mlp(in_size: int, hidden: Sequence[int], out_size: int, activation: str = "tanh") -> nn.Sequential:
    """`trunk(in_size, hidden)` followed by a Linear layer to `out_size`."""
    body = trunk(in_size, hidden, activation)
    return nn.Sequential(*body, _init(nn.Linear(hidden[-1] if hidden else in_size, out_size), 1.0))


def _init(layer: nn.Linear, gain: float, bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


class ActionHead(nn.Module):
    """Turns features into an action distribution (Gaussian or categorical). `kind`: the env's
    action (`continuous`, `discrete`, `discrete_hold`); `low` / `high`: a continuous action's
    bounds, floats (one number per action: shape `[...]`) or one per component (shape `[..., K]`,
    e.g. `fin_meta.envs.actions.action_bounds` with a no-trade band)."""

    def __init__(self, in_size: int, kind: str, low: Bound, high: Bound, init_log_std: float = -0.5) -> None:
        super().__init__()
        if kind != "continuous" and kind not in DISCRETE_CLASSES:
            raise ValueError(f"action kind {kind!r}: use 'continuous', {' or '.join(map(repr, DISCRETE_CLASSES))}")
        self.kind = kind
        self.vector = isinstance(low, Sequence)  # one bound per component: a vector action
        self.low: float | tuple[float, ...] = tuple(map(float, low)) if self.vector else float(low)
        self.high: float | tuple[float, ...] = tuple(map(float, high)) if self.vector else float(high)
        self.classes = DISCRETE_CLASSES.get(kind, 0)
        size = len(self.low) if self.vector else 1
        out = size if kind == "continuous" else self.classes
        self.linear = _init(nn.Linear(in_size, out), 0.01)
        if kind == "continuous":
            self.log_std = nn.Parameter(torch.full((size,), float(init_log_std)))

    def distribution(self, x_NF: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution for features `x_NF` (any leading shape)."""
        out = self.linear(x_NF)
        if self.kind != "continuous":
            return torch.distributions.Categorical(logits=out)
        if self.vector:
            normal = torch.distributions.Normal(out, self.log_std.exp().expand(out.shape))
            return torch.distributions.Independent(normal, 1)
        return torch.distributions.Normal(out.squeeze(-1), self.log_std.exp().expand(out.shape[:-1]))

    def sample(self, dist: torch.distributions.Distribution, generator: torch.Generator) -> torch.Tensor:
        """A seeded sample: float actions (continuous, unclipped) or int64 classes (discrete)."""
        if self.kind == "continuous":
            noise = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device, dtype=dist.mean.dtype)
            return dist.mean + dist.stddev * noise
        probs = dist.probs.reshape(-1, self.classes)
        return torch.multinomial(probs, 1, generator=generator).reshape(dist.probs.shape[:-1])

    def _clip(self, mean: torch.Tensor) -> torch.Tensor:
        if not self.vector:
            return mean.clamp(self.low, self.high)
        return torch.stack([mean[..., k].clamp(lo, hi) for k, (lo, hi) in enumerate(zip(self.low, self.high,
                                                                                         strict=True))], -1)

    def mode_of(self, x_NF: torch.Tensor) -> torch.Tensor:
        """`mode(distribution(x))` without building the distribution (fast path for deployment)."""
        out = self.linear(x_NF)
        if self.kind == "continuous":
            return self._clip(out if self.vector else out.squeeze(-1))
        return out.argmax(-1)

    def mode(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        """The deterministic action: the mean clipped to `[low, high]` / the most likely class."""
        if self.kind == "continuous":
            return self._clip(dist.mean)
        return dist.probs.argmax(-1)


def bound_loss(mean: torch.Tensor, head: ActionHead) -> torch.Tensor:
    """Mean squared excess of a continuous action's Gaussian mean beyond the head's bounds:
    mean(relu(mean - high)^2 + relu(low - mean)^2), 0 inside them (per component for vectors)."""
    low = torch.as_tensor(head.low, dtype=mean.dtype, device=mean.device)
    high = torch.as_tensor(head.high, dtype=mean.dtype, device=mean.device)
    return (torch.relu(mean - high).pow(2) + torch.relu(low - mean).pow(2)).mean()


class MLPActorCritic(nn.Module):
    """Separate MLP actor and critic over a normalised observation vector."""

    def __init__(
        self,
        obs_size: int,
        hidden: Sequence[int],
        kind: str,
        low: Bound,
        high: Bound,
        init_log_std: float = -0.5,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.norm = Normalizer(obs_size)
        self.actor_body = trunk(obs_size, hidden, activation)
        self.head = ActionHead(hidden[-1] if hidden else obs_size, kind, low, high, init_log_std)
        self.critic = mlp(obs_size, hidden, 1, activation)

    def distribution(self, obs_NO: torch.Tensor) -> torch.distributions.Distribution:
        return self.head.distribution(self.actor_body(self.norm(obs_NO)))

    def value(self, obs_NO: torch.Tensor) -> torch.Tensor:
        return self.critic(self.norm(obs_NO)).squeeze(-1)


class PackedLSTM(nn.Module):
    """A one-layer LSTM whose state `(h, c)` travels as ONE tensor `[1, N, 2H]` (h, then c), so
    that its callers carry a state as they do a GRU's. Why an LSTM: on CPU, PyTorch trains it
    with oneDNN's fused kernels (a GRU runs step by step): forward + backward over 256 steps x
    16 sequences at H = 64, one thread, 33 ms instead of 119 ms."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)

    def forward(self, x_TNI: torch.Tensor, state_N2H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state_N2H.chunk(2, -1)
        out, (h, c) = self.lstm(x_TNI, (h.contiguous(), c.contiguous()))
        return out, torch.cat([h, c], -1)


def _recurrent_trunk(input_size: int, encoder_size: int, hidden_size: int,
                     cell: str = "gru") -> tuple[nn.Linear, nn.Module]:
    """A linear (+tanh in `forward`) encoder and a one-layer GRU or `PackedLSTM` (`cell`;
    orthogonal weights, zero biases)."""
    encoder = _init(nn.Linear(input_size, encoder_size), 2**0.5)
    core: nn.Module = nn.GRU(encoder_size, hidden_size) if cell == "gru" else PackedLSTM(encoder_size, hidden_size)
    for name, p in core.named_parameters():
        if "weight" in name:
            nn.init.orthogonal_(p)
        else:
            nn.init.zeros_(p)
    return encoder, core


class GRUActorCritic(nn.Module):
    """RL² network: input `[obs, prev_action, prev_reward, done]` (`feedback`; the observation
    alone without) -> linear+tanh encoder -> GRU -> actor head and critic head.

    `separate_critic=False`: one recurrent trunk feeds both heads. `True`: the critic has its own
    encoder and GRU, so the value loss sends no gradient into the policy's trunk; the hidden state
    and the features are then the actor's and the critic's side by side (`[..., 2H]`).
    `add_belief_head(classes)` adds a linear head on the actor's features that predicts the
    regime label (a training-only auxiliary target; deployment never needs it unless `gate`).
    `gate=True` also makes the policy belief-conditioned: the action head reads the outer
    product of the belief's probabilities (detached: the belief learns from its labels only)
    and `[actor features, current input, 1]`, i.e. one linear policy per regime class over
    memory and the bar's input, mixed by the belief, so a trade that flips with the inferred
    regime (follow vs fade the last return) is one product away.

    `cell="lstm"`: the recurrent cores are `PackedLSTM`s (about 3x faster to train on CPU);
    `gru` (the default, and what agents saved before this option load as). A trunk's state is
    H wide (GRU) or 2H (LSTM: h and c); its features are H wide either way. The cores are the
    modules `gru` / `critic_gru` or `lstm` / `critic_lstm` (`core`, `critic_core`).

    `forward(x_TNI, h_NS)` runs a whole sequence (BPTT over a trial, batched across N);
    step-by-step use is the same call with T = 1, so collection and training share weights and
    numerics. S = `state_size` (a trunk's state, twice that with a separate critic)."""

    def __init__(
        self,
        obs_size: int,
        kind: str,
        low: Bound,
        high: Bound,
        *,
        encoder_size: int = 64,
        hidden_size: int = 64,
        init_log_std: float = -0.5,
        feedback: bool = True,
        separate_critic: bool = False,
        cell: str = "gru",
    ) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', not {cell!r}")
        self.obs_size = obs_size
        self.feedback = feedback
        self.input_size = obs_size + (3 if feedback else 0)  # + previous action, previous reward, done flag
        self.hidden_size = hidden_size
        self.separate_critic = separate_critic
        self.cell = cell
        self.trunk_state_size = hidden_size * (2 if cell == "lstm" else 1)
        self.state_size = self.trunk_state_size * (2 if separate_critic else 1)
        self.norm = Normalizer(obs_size)
        self.encoder, core = _recurrent_trunk(self.input_size, encoder_size, hidden_size, cell)
        self.add_module(cell, core)
        self._action = (kind, low, high, init_log_std)
        self.head = ActionHead(hidden_size, *self._action)
        self.critic = _init(nn.Linear(hidden_size, 1), 1.0)
        if separate_critic:
            self.critic_encoder, critic_core = _recurrent_trunk(self.input_size, encoder_size, hidden_size, cell)
            self.add_module(f"critic_{cell}", critic_core)
        self.belief: nn.Linear | None = None
        self.belief_gate = False

    @property
    def core(self) -> nn.Module:
        """The policy's recurrent core (`gru` or `lstm`)."""
        return self.get_submodule(self.cell)

    @property
    def critic_core(self) -> nn.Module:
        """The separate critic's recurrent core (`separate_critic` only)."""
        return self.get_submodule(f"critic_{self.cell}")

    def add_belief_head(self, classes: int, *, gate: bool = False) -> None:
        """Add the belief head: logits over `classes` regime labels from the actor's features;
        `gate` also rebuilds the action head over the belief-gated features (`policy_features`)."""
        device = self.critic.weight.device
        self.belief = _init(nn.Linear(self.hidden_size, classes), 1.0).to(device)
        self.belief_gate = gate
        if gate:
            self.head = ActionHead(classes * (self.hidden_size + self.input_size + 1), *self._action).to(device)

    def initial_state(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        """Zero hidden state `[1, N, S]` (the start of a trial)."""
        return torch.zeros(1, n, self.state_size, device=device or self.critic.weight.device)

    def inputs(
        self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor, done: torch.Tensor
    ) -> torch.Tensor:
        """Concatenate the recurrent input `[..., I]` (observation normalised here; the feedback
        is dropped when the network has no `feedback` inputs)."""
        if not self.feedback:
            return self.norm(obs)
        return torch.cat(
            [self.norm(obs), prev_action.unsqueeze(-1), prev_reward.unsqueeze(-1), done.unsqueeze(-1)], -1
        )

    def forward(
        self, x_TNI: torch.Tensor, h_NS: torch.Tensor, *, critic: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features `[T, N, S]` and the last hidden state `[1, N, S]`. `critic=False` (deployment)
        skips a separate critic: the features are the actor's `[T, N, H]`, its state stays put."""
        if not self.separate_critic:
            return self.core(torch.tanh(self.encoder(x_TNI)), h_NS)
        size = self.trunk_state_size
        actor, h_a = self.core(torch.tanh(self.encoder(x_TNI)), h_NS[..., :size].contiguous())
        if not critic:
            return actor, torch.cat([h_a, h_NS[..., size:]], -1)
        value, h_c = self.critic_core(torch.tanh(self.critic_encoder(x_TNI)), h_NS[..., size:].contiguous())
        return torch.cat([actor, value], -1), torch.cat([h_a, h_c], -1)

    def actor_features(self, feat: torch.Tensor) -> torch.Tensor:
        """The policy's part `[..., H]` of `forward`'s features."""
        return feat[..., : self.hidden_size]

    def gate_probs(self, feat: torch.Tensor) -> torch.Tensor:
        """The belief's class probabilities `[..., C]` from `forward`'s features, detached."""
        return torch.softmax(self.belief_logits(feat), -1).detach()

    def policy_features(self, feat: torch.Tensor, x: torch.Tensor | None = None,
                        probs: torch.Tensor | None = None) -> torch.Tensor:
        """What the action head reads: the actor's features `[..., H]`, or with a belief gate
        `p_k x [features, x, 1]` for every class k `[..., C(H+I+1)]` (p: `probs` if given, else
        `gate_probs(feat)`; `x`: the recurrent input `[..., I]` that produced `feat`, needed then)."""
        actor = self.actor_features(feat)
        if not self.belief_gate:
            return actor
        if x is None:
            raise ValueError("a belief-gated policy reads the current input too: pass x")
        probs = self.gate_probs(feat) if probs is None else probs
        padded = torch.cat([actor, x, torch.ones_like(actor[..., :1])], -1)
        return (probs.unsqueeze(-1) * padded.unsqueeze(-2)).flatten(-2)

    def distribution(self, feat: torch.Tensor, x: torch.Tensor | None = None,
                     probs: torch.Tensor | None = None) -> torch.distributions.Distribution:
        """The action distribution from `forward`'s features (`x`, `probs`: see `policy_features`)."""
        return self.head.distribution(self.policy_features(feat, x, probs))

    def value(self, feat: torch.Tensor) -> torch.Tensor:
        return self.critic(feat[..., -self.hidden_size :]).squeeze(-1)

    def belief_logits(self, feat: torch.Tensor) -> torch.Tensor:
        """Regime-label logits `[..., C]` from the actor's features (needs `add_belief_head`)."""
        if self.belief is None:
            raise RuntimeError("this network has no belief head; call add_belief_head(classes) first")
        return self.belief(self.actor_features(feat))
