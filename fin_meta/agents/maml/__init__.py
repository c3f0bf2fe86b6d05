"""MAML: `config` (hyperparameters, torch-free), `core` (functional policy, inner loop, pathwise
returns), `rollout` (batched rollouts of per-task parameters), `agent` (`MAMLAgent`)."""
