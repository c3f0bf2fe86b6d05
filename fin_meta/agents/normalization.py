"""Input scaling statistics of the observation vector, fitted on training prices only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fin_meta.envs.config import EnvConfig
from fin_meta.envs.features import first_decision_bar, observation_features

__all__ = ["observation_stats"]


def observation_stats(prices: Sequence[pd.DataFrame], config: EnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-element `(mean, std)` of the observation vector `[window * F + 1]` (see
    `fin_meta.envs.features` for the layout): each feature's mean and std over the decision bars
    of all `prices` frames, repeated for every bar of the window; the position slot gets mean 0
    and std `max_position`. Use it on the training period only (it then leaks nothing)."""
    rows = [
        observation_features(p, config.window, config.features, config.regime_model)[first_decision_bar(config.window) - 1 :]
        for p in prices
    ]
    feats = np.concatenate(rows, axis=0)  # [sum T, F]
    mean_f, std_f = feats.mean(axis=0), feats.std(axis=0)
    std_f = np.where(std_f > 1e-12, std_f, 1.0)
    mean = np.concatenate([np.tile(mean_f, config.window), [0.0]])
    std = np.concatenate([np.tile(std_f, config.window), [config.max_position]])
    return mean, std
