"""CPU vs CUDA: the torch env on CUDA steps like the gymnasium env, and agents trained on the CPU,
saved and loaded onto CUDA trade the same positions (within the tolerances below).

These tests need CUDA: on a CPU-only machine they skip, and `bash benchmarks/gpu_check.sh` runs
them on a GPU machine. `FIN_META_EQUIVALENCE_DEVICE=cpu` runs the same comparisons CPU vs CPU
(the GPU check's `--dry-run` does, so this file never rots unrun).

Tolerances (positions are fractions of equity in [-1, 1]):
- env: equity (float64 ledger) relative 1e-10; float64 rewards 1e-10, float32 rewards and
  observations as on the CPU (1e-6 / 1e-7: the observation table is computed once, on the CPU);
- agents, full fp32 (TF32 off): |position difference| <= 1e-4 (PPO, RL²), 1e-3 (MAML: its
  deployment takes gradient steps, which amplify float differences);
- agents at torch's default precision (cuDNN may run the RL² GRU in TF32): <= 5e-2, a bound for
  gross errors only; the measured figure is recorded (`record_property`) and the GPU check prints it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.agents import make_agent
from fin_meta.data import synthetic_regimes
from fin_meta.envs import VectorTradingEnv
from fin_meta.tasks import TaskSampler
from tests.test_envs_support import action_sequence
from tests.test_envs_vector import ASSETS, _run_gym

DEVICE = os.environ.get("FIN_META_EQUIVALENCE_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    torch.device(DEVICE).type == "cuda" and not torch.cuda.is_available(),
    reason="needs CUDA: the GPU check runs these (bash benchmarks/gpu_check.sh on a GPU machine)",
)

WINDOW = 8
ENV = {"window": WINDOW, "fees": 5e-4, "slippage": 5e-4}
SMALL = {
    "ppo": {"num_envs": 16, "hidden_sizes": [16, 16], "epochs": 2, "minibatches": 2},
    "rl2": {"num_envs": 16, "hidden_size": 16, "encoder_size": 16, "episodes_per_trial": 2, "epochs": 2,
            "minibatches": 2},
    "maml": {"meta_batch_size": 8, "support_length": 16, "query_length": 16, "hidden_sizes": [16],
             "adapt_every": 10},
}
STRICT = {"ppo": 1e-4, "rl2": 1e-4, "maml": 1e-3}
"""Max |position difference| CPU vs device with TF32 off, by algo."""
DEFAULT_PRECISION = 5e-2
"""Max |position difference| at torch's default precision (TF32 allowed): a gross-error bound."""


@contextlib.contextmanager
def fp32_precision(mode: str) -> Iterator[None]:
    """Inside the block, fp32 matmuls and cuDNN (convolutions, the GRU) run in full fp32 when
    `mode` is "ieee"; "default" leaves torch's settings alone. Set through the legacy flags, which
    torch >= 2.9 keeps in step with its `fp32_precision` API (setting that API instead makes a
    later read of the legacy flags raise); both are restored exactly after."""
    if mode == "default":
        yield
        return
    new_api = [getattr(getattr(torch.backends, m), op, None) for m, op in
               (("cuda", "matmul"), ("cudnn", "conv"), ("cudnn", "rnn"))]
    new_api = [b for b in new_api if b is not None and hasattr(b, "fp32_precision")]
    saved_new = [b.fp32_precision for b in new_api]
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        for backend, value in zip(new_api, saved_new, strict=True):
            backend.fp32_precision = value


@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_vector_env_on_device_matches_gym_env(reward, dtype):
    n_steps = 200
    kwargs = {"window": 16, "fees": 7e-4, "slippage": 3e-4, "reward": reward, "features": ["realised_vol"]}
    starts = [16, 150]
    actions = np.stack([action_sequence(n_steps, seed=s) for s in (5, 6)], axis=1).astype(np.float32)
    env = VectorTradingEnv(ASSETS, 2, device=DEVICE, dtype=dtype, **kwargs)
    assert env.device.type == torch.device(DEVICE).type
    obs, _ = env.set_tasks([0, 0], starts, [n_steps, n_steps])
    rows, rewards, equity = [obs.cpu()], [], []
    for t in range(n_steps):
        obs, reward_N, _, _, info = env.step(torch.as_tensor(actions[t], device=env.device))
        rows.append(obs.cpu())
        rewards.append(reward_N.cpu())
        equity.append(info["equity"].cpu())
    gym = [_run_gym(ASSETS[0], actions[:, i], start, **kwargs) for i, start in enumerate(starts)]
    g_rows, g_rewards, g_equity = (np.stack([run[k] for run in gym], axis=1) for k in range(3))  # [T, N, ...]
    tol = 1e-10 if dtype == torch.float64 else 1e-6
    np.testing.assert_allclose(torch.stack(equity).numpy(), g_equity, rtol=1e-10)
    np.testing.assert_allclose(torch.stack(rewards).numpy(), g_rewards, rtol=tol, atol=tol)
    np.testing.assert_allclose(torch.stack(rows[:-1]).numpy(), g_rows[:-1], rtol=1e-6, atol=1e-7)
    assert abs(g_equity[-1, 0] - 1.0) > 1e-3  # the episode actually moved equity


@pytest.fixture(scope="module")
def path() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_regimes(500, seed=11)


@pytest.fixture(scope="module")
def sampler(path) -> TaskSampler:
    prices, labels = path
    return TaskSampler(prices, labels, episode_length=32, window=WINDOW, min_segment=40)


@pytest.fixture(scope="module", params=list(SMALL))
def saved(request, sampler, tmp_path_factory):
    """(algo, CPU agent trained 2 iterations, its saved directory with training state)."""
    algo = request.param
    agent = make_agent(algo, ENV, {**SMALL[algo], "device": "cpu", "seed": 0})
    agent.fit(sampler, iterations=2, progress=False)
    return algo, agent, agent.save(tmp_path_factory.mktemp(algo) / "agent")


@pytest.mark.parametrize("precision", ["ieee", "default"])
def test_agent_positions_cpu_vs_device(saved, path, precision, record_property):
    algo, cpu_agent, directory = saved
    prices = path[0].iloc[:300]
    moved = type(cpu_agent).load(directory, device=DEVICE)
    assert moved.device.type == torch.device(DEVICE).type
    with fp32_precision(precision):
        on_cpu, on_device = cpu_agent.positions(prices), moved.positions(prices)
    assert on_device.index.equals(prices.index) and on_device.dtype == np.float64
    assert on_cpu.iloc[WINDOW:].abs().sum() > 0  # the agent trades: the comparison means something
    diff = float((on_device - on_cpu).abs().max())
    record_property(f"max_abs_position_diff.{algo}.{precision}", diff)
    bound = STRICT[algo] if precision == "ieee" else DEFAULT_PRECISION
    assert diff <= bound, f"{algo} on {DEVICE} ({precision}): max |position diff| {diff:.2e} > {bound:.0e}"


def test_agent_loaded_on_device_continues_training(saved, sampler):
    algo, cpu_agent, directory = saved
    moved = type(cpu_agent).load(directory, device=DEVICE)
    history = moved.fit(sampler, iterations=1, progress=False)
    assert moved.iterations_trained == cpu_agent.iterations_trained + 1
    assert all(np.isfinite(v) for v in history[-1].values()), history[-1]
    assert history[-1]["env_steps"] == 3 * cpu_agent.history[0]["env_steps"]
