"""MAML's functional core: the learned network (policy + inner step sizes), per-task
parameters, batched policy evaluation, pathwise returns and the inner (adaptation) loop. Torch only; no environment, no pandas.

Vectorisation across tasks: the meta-parameters theta (a `dict` name -> tensor) are expanded to
per-task copies `params_M` (name -> [M, *shape], a view of theta, so gradients flow back), and the
policy is evaluated for all M tasks at once with `torch.func.vmap` over
`torch.func.functional_call`. Because task i's objective depends only on its own copy, one
`torch.autograd.grad` of the summed objective gives every task's own gradient in one pass; the
inner step `params_M + lr * grad_M` is then a batched tensor op — no Python loop over tasks.
Second-order MAML keeps the graph of that gradient (`create_graph=True`); first-order treats it
as a constant.

Tensor suffixes: M tasks, E rollouts per task, T time steps (bars), O observation size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from fin_meta.agents.maml.config import MAMLConfig
from fin_meta.agents.networks import Normalizer, mlp
from fin_meta.envs.config import EnvConfig

__all__ = [
    "Params",
    "PolicyMLP",
    "MAMLNet",
    "expand_params",
    "policy_means",
    "acting_means",
    "squash",
    "env_actions",
    "BAND_INIT_LOGIT",
    "gaussian_log_prob",
    "score_surrogate",
    "inner_adapt",
]

Params = dict[str, torch.Tensor]
"""Parameter name -> tensor; per-task parameters carry a leading task dimension M."""


BAND_INIT_LOGIT = -8.0
"""Initial pre-sigmoid half-width of a no-trade band: h = max_position x sigmoid(-8) ~ 3e-4 x
max_position, below the initial policy's targets (|target| ~ 3e-3, the last layer starts near
zero): the band starts closed, so positions move and the pathwise gradient flows (it is zero
while the drifted weight stays strictly inside the band; a band wider than every target would
keep a flat policy flat for good)."""


class PolicyMLP(nn.Module):
    """Deterministic policy body: observation [..., O] -> unsquashed action mean [...] (or
    [..., 2] with `outputs=2`: target and band half-width, see `env_actions`), with a fixed input
    normaliser (set from training data) and a state-independent `log_std` that only the
    score-function estimator uses."""

    def __init__(self, obs_size: int, hidden_sizes: Sequence[int], activation: str = "tanh",
                 log_std: float = math.log(0.3), outputs: int = 1) -> None:
        super().__init__()
        self.norm = Normalizer(obs_size)
        self.body = mlp(obs_size, list(hidden_sizes), outputs, activation)
        nn.init.orthogonal_(self.body[-1].weight, 0.01)  # start near flat
        if outputs == 2:
            nn.init.constant_(self.body[-1].bias[1:], BAND_INIT_LOGIT)
        self.log_std = nn.Parameter(torch.tensor(float(log_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(self.norm(obs)).squeeze(-1)


class MAMLNet(nn.Module):
    """What MAML learns: the policy's initialisation theta and the inner step sizes (one per
    parameter tensor or per scalar parameter; stored as logs, kept positive)."""

    def __init__(self, obs_size: int, hp: MAMLConfig, outputs: int = 1) -> None:
        super().__init__()
        self.policy = PolicyMLP(obs_size, hp.hidden_sizes, hp.activation, log_std=math.log(hp.action_std),
                                outputs=outputs)
        self.log_step = nn.ParameterDict({
            _step_key(n): nn.Parameter(torch.full(p.shape if hp.step_sizes == "per_parameter" else (),
                                                  math.log(hp.inner_lr)), requires_grad=hp.learn_inner_lr)
            for n, p in self.policy.named_parameters()
        })

    def step_sizes(self) -> Params:
        """Inner step sizes per parameter tensor of the policy (positive; scalars or the
        tensor's shape)."""
        return {n: self.log_step[_step_key(n)].exp() for n, _ in self.policy.named_parameters()}


def _step_key(name: str) -> str:
    """The `log_step` key of policy parameter `name` (ParameterDict keys may not contain dots)."""
    return name.replace(".", "__")


def expand_params(theta: Params, m: int) -> Params:
    """Per-task views of the meta-parameters: name -> [M, *shape] (no copy; differentiable)."""
    return {name: p.unsqueeze(0).expand(m, *p.shape) for name, p in theta.items()}


def policy_means(module: nn.Module, params_m: Params, obs_m: torch.Tensor) -> torch.Tensor:
    """Unsquashed action means for M tasks at once: `obs_m` [M, ..., O] -> [M, ...], task i
    evaluated with its own parameters `params_m[name][i]`."""

    def one(p: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(module, p, (x,))

    return vmap(one, in_dims=(0, 0))(params_m, obs_m)


@torch.no_grad()
def acting_means(module: PolicyMLP, params_m: Params, obs_m: torch.Tensor) -> torch.Tensor:
    """`policy_means` for acting inside a rollout (no gradient): the same function computed with
    batched matrix products (`torch.baddbmm`) instead of vmap, which is much cheaper per call
    when it runs once per bar. `obs_m` [M, E, O] -> [M, E] (or [M, E, 2])."""
    x = module.norm(obs_m)
    for i, layer in enumerate(module.body):
        if isinstance(layer, nn.Linear):
            weight, bias = params_m[f"body.{i}.weight"], params_m[f"body.{i}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        else:
            x = layer(x)
    return x.squeeze(-1)


def squash(u: torch.Tensor, max_position: float, allow_short: bool) -> torch.Tensor:
    """Map an unbounded action to a target position: `max * tanh(u)` in [-max, max], or
    `max * (tanh(u) + 1) / 2` in [0, max] when shorting is not allowed."""
    t = torch.tanh(u)
    return max_position * (t if allow_short else 0.5 * (t + 1.0))


def env_actions(u: torch.Tensor, config: EnvConfig) -> torch.Tensor:
    """The env action of unsquashed policy outputs: the target `squash(u)` [...], or with a
    no-trade band (`u` [..., 2]) the pair (squash(u[..., 0]), max_position x sigmoid(u[..., 1]))
    [..., 2]: a target within the bounds and a half-width in [0, max_position], which the env
    takes as they are."""
    if not config.no_trade_band:
        return squash(u, config.max_position, config.allow_short)
    target = squash(u[..., 0], config.max_position, config.allow_short)
    return torch.stack([target, config.max_position * torch.sigmoid(u[..., 1])], dim=-1)


def gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log density of unsquashed actions `u` under N(mean, exp(log_std)^2), elementwise."""
    z = (u - mean) * torch.exp(-log_std)
    return -0.5 * z * z - log_std - 0.5 * math.log(2.0 * math.pi)


def score_surrogate(log_prob_met: torch.Tensor, rewards_met: torch.Tensor) -> torch.Tensor:
    """Per-task REINFORCE surrogate [M] whose gradient is the likelihood-ratio policy gradient
    of the mean per-bar reward: log-probs weighted by reward-to-go minus its mean over the task's
    E rollouts (a per-time-step baseline), averaged over rollouts and bars."""
    to_go = rewards_met.flip(-1).cumsum(-1).flip(-1)
    adv = to_go - to_go.mean(dim=1, keepdim=True)
    return (log_prob_met * adv.detach()).mean(dim=(1, 2))


def inner_adapt(
    params_m: Params,
    step_sizes: Params,
    objective: Callable[[Params], torch.Tensor],
    steps: int,
    *,
    create_graph: bool,
) -> list[Params]:
    """k gradient-ascent steps on each task's own `objective(params_m) -> [M]`.

    `step_sizes`: name -> positive step sizes (a scalar, or the parameter's shape). Returns the list of
    per-task parameters after 0, 1, ..., `steps` steps. `create_graph=True` keeps the gradient's
    graph (second-order MAML); False treats each inner gradient as a constant (first-order)."""
    names = list(params_m)
    history = [params_m]
    with torch.enable_grad():
        for _ in range(steps):
            current = history[-1]
            total = objective(current).sum()
            grads = torch.autograd.grad(total, [current[n] for n in names],
                                        create_graph=create_graph, allow_unused=True)
            history.append({
                n: current[n] if g is None else current[n] + step_sizes[n] * g
                for n, g in zip(names, grads, strict=True)
            })
    return history
