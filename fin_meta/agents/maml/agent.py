"""MAML for trading: a policy initialisation that a few policy-gradient steps on the most
recent bars adapt to the current regime.

Meta-training (`fit`), per iteration (`collect`: steps 1-2; `update`: steps 3-5):

1. draw M tasks (`TaskSampler.sample_task_arrays`, regimes balanced): windows of
   `support_length + query_length` decisions that start in a regime (the sampler conditions on
   the label at the start only, so the query is not chosen to continue the support's regime);
2. roll the meta-policy theta out on each task's SUPPORT window (the first `support_length`
   decisions) in a `VectorTradingEnv` of M x E envs (`set_tasks`);
3. inner loop: k gradient-ascent steps of each task's own copy of the parameters on its
   support objective, all tasks at once (`maml.core.inner_adapt`: per-task parameter tensors,
   `torch.func.vmap` over `functional_call`, one `autograd.grad` for every task);
4. roll each adapted policy out on its QUERY window (the `query_length` decisions that follow);
5. outer step: Adam on theta (and the Meta-SGD inner step sizes) to maximise the adapted
   policies' query objective, differentiating through the inner loop (second order) or not
   (`first_order=True`).

Objectives (`fin_meta.agents.maml.objectives`): every bar's net log return g, costs included,
scored as the mean-variance utility `g - risk_aversion/2 * g^2`, by its exact pathwise gradient
(default) or by REINFORCE (`estimator="score"`).

Deployment (`positions`): walk forward with the meta-policy; at bar p = `window +
adapt_window` and every `adapt_every` bars after (plus, optionally, where the causal regime
detector's label changes) re-adapt theta on the support window of the `adapt_window` decisions
that ended at p (settled at close p: only past data) and trade with those parameters until the
next adaptation.

With `adapt=False` (the control without adaptation, see `MAMLConfig.adapt`) steps 2-3 and
every deployment adaptation are skipped: the outer step trains theta itself on the query windows.

Meta-test (`adaptation_curve`): see its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.deploy import positions_by_length, walk_forward_batch
from fin_meta.agents.maml.config import MAMLConfig
from fin_meta.agents.maml.core import MAMLNet, Params, PolicyMLP, expand_params, inner_adapt
from fin_meta.agents.maml.deploy import AdaptedPolicy, adaptation_points
from fin_meta.agents.maml.objectives import TradingObjectives
from fin_meta.agents.maml.rollout import Batch, ReturnsTable, rollout
from fin_meta.agents.networks import Normalizer
from fin_meta.agents.torch_agent import TorchAgent
from fin_meta.agents.training import FitContext
from fin_meta.envs.actions import action_size
from fin_meta.envs.features import first_decision_bar
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import ConfigError, DataError
from fin_meta.seeding import torch_generator
from fin_meta.tasks import TaskSampler

__all__ = ["MAMLAgent", "MAMLFitContext", "SupportRollout"]


@dataclass
class MAMLFitContext(FitContext):
    """What one MAML `fit` call shares across its meta steps: the env of M x E envs
    (`meta_batch_size x envs_per_task`) and the sampler's returns table. Exploration draws
    (score estimator) come from the agent's own generator, not from `gen`."""

    env: VectorTradingEnv
    returns: ReturnsTable


@dataclass
class SupportRollout:
    """The collected half of a meta step: the M tasks (`asset_m`, support start bars
    `start_m`), theta's per-task copies `params_m` (views attached to theta) and their
    rollout `batch` on the support windows (None with `adapt=False`: nothing adapts)."""

    asset_m: torch.Tensor
    start_m: torch.Tensor
    params_m: Params
    batch: Batch | None


class MAMLAgent(TorchAgent):
    """A MAML trading agent (see the module docstring). `MAMLAgent(env_config=..., hparams=...)`
    with an `EnvConfig` (continuous actions) and a `MAMLConfig` (or their fields)."""

    algo: ClassVar[str] = "maml"
    config_cls = MAMLConfig
    hparams: MAMLConfig
    net: MAMLNet

    def __init__(self, env_config: Any = None, hparams: Any = None) -> None:
        super().__init__(env_config=env_config, hparams=hparams)
        if self.env_config.action != "continuous":
            raise ConfigError("MAML needs env action='continuous' (its policy outputs a position); "
                              "set env.action: continuous")
        self._gen = torch_generator(self.hparams.seed, self.device)

    def build_network(self) -> MAMLNet:
        return MAMLNet(self.obs_size, self.hparams, outputs=action_size(self.env_config))

    def build_optimizer(self) -> torch.optim.Adam:
        """Adam over theta and the inner step sizes (`outer_lr`)."""
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.outer_lr)

    def generators(self) -> dict[str, torch.Generator]:
        """Besides `train`, `explore`: the score estimator's exploration draws during training."""
        return {**super().generators(), "explore": self._gen}

    # ------------------------------------------------------------------ parameters
    @property
    def policy(self) -> PolicyMLP:
        """The policy module (its parameters are theta)."""
        return self.net.policy

    def theta(self) -> Params:
        """The meta-parameters (name -> tensor, attached to the module)."""
        return dict(self.net.policy.named_parameters())

    def step_sizes(self) -> Params:
        """Inner step sizes per parameter tensor (positive; scalars or the tensor's shape)."""
        return self.net.step_sizes()

    def _task_params(self, m: int, *, requires_grad: bool) -> Params:
        """Per-task copies of theta: views that back-propagate into theta when training, or
        detached leaves that only the inner loop differentiates (deployment, meta-test)."""
        if requires_grad:
            return expand_params(self.theta(), m)
        return {n: p.detach().unsqueeze(0).expand(m, *p.shape).requires_grad_()
                for n, p in self.theta().items()}

    @property
    def objectives(self) -> TradingObjectives:
        """The inner / outer objectives under the current settings."""
        return TradingObjectives(self.net.policy, self.env_config, self.hparams)

    @property
    def input_normalizer(self) -> Normalizer:
        return self.net.policy.norm

    # ------------------------------------------------------------------ training
    def _noise(self, params_m: Params) -> torch.Tensor | None:
        """Exploration std per task (score estimator only)."""
        if self.hparams.estimator != "score":
            return None
        return params_m["log_std"].detach().exp()

    def _train_draws(self, length: int) -> torch.Tensor | None:
        """Standard normal exploration draws [T, M, E] for a training rollout."""
        if self.hparams.estimator != "score":
            return None
        m, e = self.hparams.meta_batch_size, self.hparams.envs_per_task
        return torch.randn((length, m, e, *self._draw_shape()), generator=self._gen, device=self.device)

    def _draw_shape(self) -> tuple[int, ...]:
        """Trailing shape of one exploration draw: (2,) with a no-trade band, else ()."""
        return (2,) if self.env_config.no_trade_band else ()

    def _window_draws(self, starts: np.ndarray, length: int) -> torch.Tensor | None:
        """Exploration draws [T, M, E] for adaptation windows starting at bars `starts`, each
        from a generator seeded by (seed, start bar): the same window always gets the same draws,
        however many windows are adapted together (so deployment stays online)."""
        if self.hparams.estimator != "score":
            return None
        e = self.hparams.envs_per_task
        draws = [torch.randn((length, e, *self._draw_shape()),
                             generator=torch_generator(self.hparams.seed * 1_000_003 + int(b)))
                 for b in starts]
        return torch.stack(draws, dim=1).to(self.device)

    def fit_context(self, sampler: TaskSampler, rng: np.random.Generator, gen: torch.Generator) -> MAMLFitContext:
        """M x E envs over the sampler's prices and their returns table."""
        hp = self.hparams
        m, e = hp.meta_batch_size, hp.envs_per_task
        env = VectorTradingEnv(sampler.prices, m * e, device=self.device, seed=hp.seed, config=self.env_config,
                               training=True)
        self.net.train()
        return MAMLFitContext(rng=rng, gen=gen, optimizer=self.optimizer(),
                              env_steps_per_iteration=m * e * ((hp.support_length if hp.adapt else 0) + hp.query_length),
                              env=env, returns=ReturnsTable(sampler.prices, self.device))

    def collect(self, sampler: TaskSampler, ctx: MAMLFitContext) -> SupportRollout:
        """Draw M tasks (support + query windows starting in a regime) and roll theta's
        per-task copies out on their support windows (not with `adapt=False`: batch None)."""
        hp = self.hparams
        asset, start, _, _ = sampler.sample_task_arrays(hp.meta_batch_size, ctx.rng,
                                                        length=hp.support_length + hp.query_length)
        asset_m = torch.as_tensor(asset, device=self.device)
        start_m = torch.as_tensor(start, device=self.device)
        params_m = self._task_params(hp.meta_batch_size, requires_grad=True)
        if not hp.adapt:
            return SupportRollout(asset_m, start_m, params_m, None)
        batch = rollout(ctx.env, self.policy, params_m, asset_m, start_m, hp.support_length, ctx.returns,
                        envs_per_task=hp.envs_per_task, noise_std_m=self._noise(params_m),
                        noise_tme=self._train_draws(hp.support_length))
        return SupportRollout(asset_m, start_m, params_m, batch)

    def update(self, support: SupportRollout, ctx: MAMLFitContext) -> dict[str, float]:
        """Adapt each task's copy on its support rollout, roll the adapted policies out on the
        query windows, one outer Adam step. Metrics: `query_return` (mean per-bar net log return
        of the adapted policies on their query windows), `episode_return` (the query window's
        total), `support_return_pre` / `support_return_post` (before / after adaptation),
        `loss`, `grad_norm`, `inner_lr` (mean inner step size). With `adapt=False` theta itself
        plays the query windows, and the support and inner-step metrics are left out."""
        hp, objectives = self.hparams, self.objectives
        q_len = hp.query_length
        adapted = support.params_m
        if support.batch is not None:
            adapted = inner_adapt(support.params_m, self.step_sizes(), objectives.inner(support.batch),
                                  hp.inner_steps, create_graph=not hp.first_order)[-1]
        query = rollout(ctx.env, self.policy, adapted, support.asset_m, support.start_m + hp.support_length, q_len,
                        ctx.returns, envs_per_task=hp.envs_per_task, noise_std_m=self._noise(adapted),
                        noise_tme=self._train_draws(q_len))
        loss = -objectives.outer(adapted, query).mean()
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), hp.max_grad_norm)
        ctx.optimizer.step()
        with torch.no_grad():
            q_ret = objectives.executed_log_returns(query).mean(dim=(1, 2))
            metrics = {"loss": float(loss.detach()), "query_return": float(q_ret.mean()),
                       "episode_return": float(q_ret.mean() * q_len), "grad_norm": float(grad_norm)}
            if support.batch is not None:
                metrics.update(
                    support_return_pre=float(objectives.mean_log_return(support.params_m, support.batch).mean()),
                    support_return_post=float(objectives.mean_log_return(adapted, support.batch).mean()),
                    inner_lr=float(torch.cat([v.reshape(-1) for v in self.step_sizes().values()]).mean()),
                )
        return metrics

    # ------------------------------------------------------------------ adaptation
    def _adapt(self, prices: pd.DataFrame, returns: ReturnsTable, starts: np.ndarray, length: int,
               steps: int) -> list[Params]:
        """Adapt theta on the support windows of `length` decisions starting at bars `starts` of
        `prices` (all at once): parameters after 0..steps inner steps, detached (steps 0: theta's
        copies, no rollout)."""
        m = int(len(starts))
        if steps == 0:
            return [{n: p.detach() for n, p in self._task_params(m, requires_grad=False).items()}]
        env = VectorTradingEnv(prices, m * self.hparams.envs_per_task, device=self.device,
                               seed=self.hparams.seed, config=self.env_config)
        params_m = self._task_params(m, requires_grad=False)
        asset_m = torch.zeros(m, dtype=torch.long, device=self.device)
        start_m = torch.as_tensor(np.asarray(starts, dtype=np.int64), device=self.device)
        support = rollout(env, self.policy, params_m, asset_m, start_m, length, returns,
                          envs_per_task=self.hparams.envs_per_task, noise_std_m=self._noise(params_m),
                          noise_tme=self._window_draws(starts, length))
        sizes = {n: s.detach() for n, s in self.step_sizes().items()}
        history = inner_adapt(params_m, sizes, self.objectives.inner(support), steps, create_graph=False)
        return [{n: p.detach() for n, p in h.items()} for h in history]

    def adaptation_points(self, prices: pd.DataFrame) -> np.ndarray:
        """Decision bars at which deployment re-adapts (`maml.deploy.adaptation_points`)."""
        return adaptation_points(prices, self.hparams, first_decision_bar(self.env_config.window))

    @torch.no_grad()
    def positions_batch(self, frames: Sequence[pd.DataFrame]) -> list[pd.Series]:
        """Online, causal walk-forward (see the module docstring): float64 targets on each
        frame's index, 0 before the first decision bar `window`; frames of equal length walk
        together (each adapts on its own bars only)."""
        cfg, hp = self.env_config, self.hparams
        w = first_decision_bar(cfg.window)
        for prices in frames:
            if len(prices) < w + 2:
                raise DataError(f"positions: {len(prices)} bars are too few for window={cfg.window}; "
                                f"give at least {w + 2}")
        self.net.eval()
        theta = {n: p.detach().unsqueeze(0) for n, p in self.theta().items()}

        def walk(part: list[pd.DataFrame]) -> np.ndarray:  # frames of one length, each adapting on its own bars
            points = [self.adaptation_points(prices) for prices in part]
            adapted = [self._adapt(prices, ReturnsTable([prices], self.device), pts - hp.deploy_window,
                                   hp.deploy_window, hp.deploy_steps)[-1] if pts.size else None
                       for prices, pts in zip(part, points, strict=True)]
            policy = AdaptedPolicy.from_sets(self.objectives, theta, adapted, points, w, len(part[0]))
            return walk_forward_batch(part, cfg, policy, device=self.device)

        return positions_by_length(frames, walk, self.algo)

    def context_bars(self, steps: Sequence[int]) -> int:
        """Bars of a held-out segment used before the evaluation part: the support window
        (`adapt_window`, default `support_length`)."""
        return int(self.hparams.deploy_window)

    def adaptation_curve(
        self, prices: pd.DataFrame, start: int, end: int, steps: Sequence[int], *, eval_start: int | None = None
    ) -> dict[int, float]:
        """Meta-test protocol on bars `[start, end)`: decisions run from `s0 = max(start, window)`
        to `end - 2` (each settled inside the segment). The evaluation part is the decisions from
        `e` on: `e = eval_start` when given (the meta-test passes one shared by every agent), else
        `s0 + min(adapt_window, n // 2)`. The support is the `min(adapt_window, e - s0)`
        decisions just before `e` (explore/adapt: a rollout of theta, then k inner steps); the
        evaluation part is traded from flat by the parameters after k steps, without further
        adaptation. Returns {k: mean per-bar net log return on the evaluation part} (k = 0 is
        the unadapted meta-policy; with `adapt=False` every k trades theta)."""
        cfg = self.env_config
        w = first_decision_bar(cfg.window)
        s0 = max(int(start), w)
        n_dec = int(end) - 1 - s0
        if n_dec < 4 or end > len(prices):
            raise DataError(f"adaptation_curve: segment [{start}, {end}) leaves {n_dec} decisions after "
                            f"the {cfg.window}-bar warm-up; it needs at least 4 (and end <= {len(prices)})")
        if eval_start is None:
            eval_start = s0 + min(self.hparams.deploy_window, n_dec // 2)
        eval_start = int(eval_start)
        n_sup = min(self.hparams.deploy_window, eval_start - s0)
        n_eval = int(end) - 1 - eval_start
        if n_sup < 2 or n_eval < 1:
            raise DataError(f"adaptation_curve: evaluating segment [{start}, {end}) from bar {eval_start} "
                            f"leaves {n_sup} support and {n_eval} evaluation decisions; it needs >= 2 and >= 1")
        ks = sorted({int(k) for k in steps})
        returns = ReturnsTable([prices], self.device)
        history = self._adapt(prices, returns, np.array([eval_start - n_sup]), n_sup,
                              max(ks) if self.hparams.adapt else 0)
        params = {n: torch.cat([history[min(k, len(history) - 1)][n] for k in ks]) for n in history[0]}
        env = VectorTradingEnv(prices, len(ks), device=self.device, seed=self.hparams.seed, config=cfg)
        zeros = torch.zeros(len(ks), dtype=torch.long, device=self.device)
        evaluation = rollout(env, self.policy, params, zeros, zeros + eval_start, n_eval, returns)
        values = self.objectives.executed_log_returns(evaluation).mean(dim=(1, 2))
        return {k: float(v) for k, v in zip(ks, values.tolist(), strict=True)}

