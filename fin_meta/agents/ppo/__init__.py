"""Pooled PPO: `config` (hyperparameters, torch-free), `core` (clipped-PPO update, GAE, buffer),
`agent` (`PPOAgent`)."""
