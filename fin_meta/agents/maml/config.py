"""Hyperparameters of the MAML agent (torch-free, so configs validate without importing torch).

Units: bars are daily bars; learning rates are per optimiser step; returns are fractions
(0.01 = 1 %) unless a field says otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ADAPT_ONLY", "MAMLConfig"]

ADAPT_ONLY = ("inner_steps", "inner_lr", "learn_inner_lr", "step_sizes", "first_order", "adapt_window",
              "adapt_every", "adapt_steps", "adapt_on_regime_change", "regime_method")
"""Keys that only matter when the agent adapts (`adapt: true`); with `adapt: false` they must
keep their defaults."""


class MAMLConfig(BaseModel):
    """MAML on trading tasks: a meta-learned policy initialisation (and inner step
    sizes) that k policy-gradient steps on a support window adapt to the task's regime."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64])
    """Widths of the policy MLP's hidden layers."""

    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden-layer nonlinearity of the policy MLP."""

    estimator: Literal["pathwise", "score"] = "pathwise"
    """Policy-gradient estimator of the inner and outer objectives. `pathwise`: the exact
    gradient of the window's net log return with respect to the policy's (deterministic)
    positions — valid because a trader's positions do not move prices — with observations taken
    from the environment rollout. `score`: the likelihood-ratio (REINFORCE) gradient of a
    Gaussian policy with a per-time-step baseline over `envs_per_task` sampled rollouts."""

    adapt: bool = True
    """False: the control without adaptation, the pooled pathwise MLP. Same network, tasks,
    objective and outer loop, but no inner loop in training or deployment. Each outer step is
    Adam on theta maximising the mean over the M tasks of the outer objective of theta's OWN
    positions on the query windows: pathwise, `reward_scale` x the mean per-bar utility
    `g - risk_aversion/2 * g^2` of the net log returns g (training cost pressure included);
    score, the REINFORCE surrogate of that utility. The query windows are those of adapt=True
    (`query_length` bars after `support_length` bars that nothing is trained on). Deployment
    trades theta throughout. It tells adaptation from objective. The keys of `ADAPT_ONLY` must
    then keep their defaults."""

    inner_steps: int = Field(1, ge=1, le=10)
    """k: policy-gradient steps of the inner loop during meta-training."""

    inner_lr: float = Field(0.5, gt=0)
    """Initial inner-loop step size (on the objective scaled by `reward_scale`)."""

    learn_inner_lr: bool = True
    """Meta-learn the inner step sizes (kept positive) along with the initialisation."""

    step_sizes: Literal["per_tensor", "per_parameter"] = "per_parameter"
    """Granularity of the inner step sizes: one per parameter tensor, or one per scalar
    parameter (Meta-SGD: the meta-learner also chooses which weights adapt and how far)."""

    first_order: bool = False
    """First-order MAML: do not back-propagate through the inner gradient (no Hessian terms)."""

    support_length: int = Field(48, ge=2)
    """Bars of a training task's support window (the inner loop adapts on these)."""

    query_length: int = Field(48, ge=2)
    """Bars of a training task's query window (right after the support window; the outer loop
    maximises the adapted policy's net return on these)."""

    meta_batch_size: int = Field(64, ge=1)
    """Tasks per outer step (all adapted at once, batched)."""

    envs_per_task: int = Field(1, ge=1)
    """Rollouts per task per window; only `estimator="score"` needs more than 1."""

    outer_lr: float = Field(3e-3, gt=0)
    """Adam learning rate of the outer (meta) update."""

    max_grad_norm: float = Field(1.0, gt=0)
    """Clip the outer gradient to this global norm."""

    risk_aversion: float = Field(10.0, ge=0)
    """gamma of the mean-variance objective: every objective scores a bar's net log return g
    as `g - gamma/2 * g^2` (0 = plain log return). It makes the inner step shrink positions
    where the support window is volatile and the outer step prefer steady returns (Sharpe)."""

    reward_scale: float = Field(100.0, gt=0)
    """Multiplies per-bar log returns in the objectives (100 = percent), to keep gradients of
    a sensible size."""

    action_std: float = Field(0.3, gt=0)
    """Initial standard deviation of the Gaussian pre-squash action (score estimator only)."""

    adapt_window: int | None = Field(None, ge=2)
    """Deployment: adapt on the most recent `adapt_window` bars (default: `support_length`)."""

    adapt_every: int = Field(5, ge=1)
    """Deployment: re-adapt from the meta-learned initialisation every `adapt_every` bars."""

    adapt_steps: int | None = Field(None, ge=0, le=10)
    """Deployment: inner steps per adaptation (default: `inner_steps`; 0 = never adapt)."""

    adapt_on_regime_change: bool = False
    """Deployment: also re-adapt at a bar where the causal regime detector's label changes."""

    regime_method: str = "trend_vol"
    """Causal detector used by `adapt_on_regime_change` (see `fin_meta.regimes`)."""

    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda[:i]`."""

    seed: int = 0
    """Seeds the network initialisation, the task sampling and the rollouts."""

    @model_validator(mode="after")
    def _check(self) -> MAMLConfig:
        if self.estimator == "score" and self.envs_per_task < 2:
            raise ValueError("estimator='score' needs envs_per_task >= 2 (its baseline is the "
                             "mean over a task's rollouts); set envs_per_task, e.g. 8")
        if not self.adapt:
            fields = type(self).model_fields
            given = [f"{key}={getattr(self, key)!r}" for key in ADAPT_ONLY
                     if getattr(self, key) != fields[key].get_default(call_default_factory=True)]
            if given:
                them = "them" if len(given) > 1 else "it"
                raise ValueError(f"with adapt: false (no adaptation) {', '.join(given)} would be ignored; "
                                 f"remove {them} (back to the default) or set adapt: true")
        return self

    @property
    def deploy_window(self) -> int:
        """Bars the deployment adaptation uses."""
        return self.adapt_window if self.adapt_window is not None else self.support_length

    @property
    def deploy_steps(self) -> int:
        """Inner steps of a deployment adaptation (0 with `adapt=False`)."""
        if not self.adapt:
            return 0
        return self.adapt_steps if self.adapt_steps is not None else self.inner_steps
