"""How an action becomes the position held: the one map that `TradingEnv`, `VectorTradingEnv`,
MAML's pathwise objective and deployment (`agents.deploy`) share (Python floats or torch
tensors, through `xp` as in `fin_meta.envs.ledger`).

Actions (`EnvConfig.action`, `EnvConfig.no_trade_band`):
- `continuous`: a target, clipped to the position bounds;
- `continuous` with `no_trade_band`: (target, half-width h), the target clipped to the bounds and
  h to [0, max_position];
- `discrete`: {0, 1, 2} = short, flat, long (`DISCRETE_LEVELS` x max_position);
- `discrete_hold`: {0, 1, 2, 3} = short, flat, long, hold (`HOLD`: keep the drifted weight).

With `d` the drifted weight (the previous position after the bar's price move), the action's
aim is its target, or `clamp(d, target - h, target + h)` with a band (Imaki et al.'s
no-transaction band), or `d` for hold; the position held is
`w = clip(d + kappa (aim - d), low, high)` with kappa = `EnvConfig.adjust` (Gârleanu-Pedersen
partial adjustment; kappa = 1 holds the aim itself). A plain continuous or discrete action with
kappa = 1 holds its target, bitwise as before these options existed (`holds_target`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fin_meta.envs.config import EnvConfig

if TYPE_CHECKING:
    import torch

__all__ = [
    "DISCRETE_LEVELS",
    "DISCRETE_CLASSES",
    "HOLD",
    "action_bounds",
    "action_size",
    "decode_actions",
    "discrete_levels",
    "held_position",
    "holds_target",
    "is_discrete",
]

DISCRETE_LEVELS = (-1.0, 0.0, 1.0)
"""Discrete actions 0, 1, 2 = short, flat, long, in units of max_position."""

HOLD = 3
"""The fourth action of `discrete_hold`: keep the drifted weight (trade nothing)."""

DISCRETE_CLASSES = {"discrete": 3, "discrete_hold": 4}
"""Number of actions of each discrete action space."""


def is_discrete(config: EnvConfig) -> bool:
    """Whether the action is a class index (`discrete`, `discrete_hold`)."""
    return config.action in DISCRETE_CLASSES


def action_size(config: EnvConfig) -> int:
    """Numbers in one env's action: 2 with a no-trade band (target, half-width), else 1."""
    return 2 if config.no_trade_band else 1


def action_bounds(config: EnvConfig) -> tuple[Any, Any]:
    """(low, high) of a continuous action: floats (the position bounds), or with a band the
    tuples (position low, 0) and (position high, max_position)."""
    low, high = config.position_bounds
    if config.no_trade_band:
        return (low, 0.0), (high, config.max_position)
    return low, high


def holds_target(config: EnvConfig) -> bool:
    """True when the position held is the action's (clipped) target: no band, no hold, kappa = 1."""
    return config.adjust == 1.0 and not config.no_trade_band and config.action != "discrete_hold"


def held_position(drifted: Any, target: Any, half_width: Any, config: EnvConfig, xp: Any) -> Any:
    """The position held after the trade at a decision (see the module docstring): `drifted` the
    weight before the trade, `target` the action's clipped target (the drifted weight for hold),
    `half_width` the band's h or None. Floats with `xp = ledger.ScalarOps`, tensors with torch."""
    aim = target if half_width is None else xp.clip(drifted, target - half_width, target + half_width)
    if config.adjust != 1.0:
        aim = drifted + config.adjust * (aim - drifted)
    low, high = config.position_bounds
    return xp.clip(aim, low, high)


def discrete_levels(config: EnvConfig, device: torch.device) -> torch.Tensor:
    """Positions of the classes short, flat, long (float64 [3], clipped to the bounds)."""
    import torch

    low, high = config.position_bounds
    levels = torch.tensor(DISCRETE_LEVELS, dtype=torch.float64, device=device)
    return (levels * config.max_position).clamp(low, high)


def decode_actions(
    actions: torch.Tensor, drifted: torch.Tensor | None, config: EnvConfig, levels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target, half-width or None), float64 `[N]`, of valid actions `[N]` (`[N, 2]` with a band);
    `drifted` (float64 `[N]`) is needed by `discrete_hold` only; `levels` (`discrete_levels`)
    may be passed to save building it."""
    import torch

    if is_discrete(config):
        index = actions.long()
        levels = discrete_levels(config, actions.device) if levels is None else levels
        if config.action == "discrete_hold":
            if drifted is None:
                raise ValueError("discrete_hold actions need the drifted weight")
            return torch.where(index == HOLD, drifted, levels.index_select(0, index.clamp_max(HOLD - 1))), None
        return levels.index_select(0, index), None
    values = actions.to(torch.float64)
    low, high = config.position_bounds
    if config.no_trade_band:
        return values[..., 0].clamp(low, high), values[..., 1].clamp(0.0, config.max_position)
    return values.clamp(low, high), None
