"""How the PPO loss's parts pull on the recurrent agents' policy trunk (a diagnostic, not used in
training): the gradient norm that the policy loss and the weighted value loss each send into the
policy's encoder + GRU, and the factor by which the global gradient clip scales the whole step.
With a shared trunk the value gradient there dwarfs the policy's early in training; with
`separate_critic` it is zero by construction. `benchmarks/rl2_gradients.py` prints the figures.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from fin_meta.agents.ppo.core import PPOLossWeights, ppo_loss
from fin_meta.agents.rl2.agent import RL2Agent, TrialRollout

__all__ = ["trunk_gradient_norms"]


def _norm(grads: tuple[torch.Tensor | None, ...]) -> float:
    return float(torch.sqrt(sum((g.pow(2).sum() for g in grads if g is not None), torch.tensor(0.0))))


def trunk_gradient_norms(agent: RL2Agent, rollout: TrialRollout) -> dict[str, float]:
    """Over all trials of `rollout` (the network as it is, fresh trials: nothing is updated):
    `policy_trunk` / `value_trunk`, the L2 norms of the gradients of the policy loss (clipped
    surrogate - entropy bonus) and of `value_coef` x the value loss on the policy's encoder +
    GRU, and their `ratio` (value / policy); `global` the norm of the full loss's gradient over
    every parameter and `clip_factor` = min(1, max_grad_norm / global), the scale of the step."""
    h, net = agent.hparams, agent.net
    weights = PPOLossWeights.from_config(h)
    idx = torch.arange(rollout.inputs_TNI.shape[1], device=agent.device)
    new_logp, entropy, values, *_ = agent._evaluate(rollout, idx)
    batch = rollout.batch
    args = (new_logp, batch["logp"], batch["advantages"], values, batch["returns"], entropy)
    total, _ = ppo_loss(*args, weights)
    policy, _ = ppo_loss(*args, replace(weights, value_coef=0.0))
    value = weights.value_coef * 0.5 * (values - batch["returns"]).pow(2).mean()  # ppo_loss's value term
    trunk = [*net.encoder.parameters(), *net.core.parameters()]
    params = [p for p in net.parameters() if p.requires_grad]
    g_policy = torch.autograd.grad(policy, trunk, retain_graph=True, allow_unused=True)
    g_value = torch.autograd.grad(value, trunk, retain_graph=True, allow_unused=True)
    g_all = torch.autograd.grad(total, params, allow_unused=True)
    p_norm, v_norm, global_norm = _norm(g_policy), _norm(g_value), _norm(g_all)
    return {"policy_trunk": p_norm, "value_trunk": v_norm, "ratio": v_norm / max(p_norm, 1e-12),
            "global": global_norm, "clip_factor": min(1.0, h.max_grad_norm / max(global_norm, 1e-12))}
