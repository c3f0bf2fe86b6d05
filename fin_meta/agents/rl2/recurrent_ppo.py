"""`rppo`, the recurrent PPO control: memory without meta-learning.

The RL² machinery (`fin_meta.agents.rl2.agent`) with two switches: the GRU policy sees only the
observation (no previous position, reward or done flag), and each training window, a
start-conditioned stream of `episodes_per_trial x episode_length` bars, is ONE episode
(position and equity run on) with the hidden state carried through it and bootstrapping only at
its end. It trades with the hidden state carried through every bar (`deploy_context: stream`).
Where RL² beats it, the gain comes from meta-learning over trials, not from memory alone.
"""

from __future__ import annotations

from typing import ClassVar

from fin_meta.agents.rl2.agent import RL2Agent
from fin_meta.agents.rl2.config import RecurrentPPOConfig

__all__ = ["RecurrentPPOAgent", "RecurrentPPOConfig"]


class RecurrentPPOAgent(RL2Agent):
    """Recurrent PPO on long streams (see the module docstring). `RecurrentPPOAgent(env_config, hparams)`."""

    algo: ClassVar[str] = "rppo"
    config_cls = RecurrentPPOConfig
    feedback_inputs: ClassVar[bool] = False
    one_episode: ClassVar[bool] = True
    hparams: RecurrentPPOConfig
