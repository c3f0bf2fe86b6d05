"""RL²: `config` (hyperparameters, torch-free), `agent` (`RL2Agent`, recurrent PPO over trials),
`deploy` (trial-context deployment)."""
