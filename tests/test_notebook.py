"""experiments/explore_agent.ipynb runs end to end (nbclient, a real ipykernel from this
environment) against a tiny real experiment logged to a temporary MLflow store, so it never rots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from fin_meta.config.experiment import load_config
from fin_meta.pipeline.run_job import run_experiment

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "experiments" / "explore_agent.ipynb"
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
TINY = [
    "agent.iterations=1",
    "agent.num_envs=8",
    "evaluation.bootstrap_samples=100",
    "evaluation.baselines=[buy_and_hold]",
    "evaluation.adaptation_steps=[0]",
]


def _read() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_cell(nb: nbformat.NotebookNode) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def _text(cell: nbformat.NotebookNode) -> str:
    """Everything a code cell printed or displayed, as plain text."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `python3` kernelspec for THIS interpreter (the project venv), found first through
    JUPYTER_PATH; Jupyter and IPython runtime files stay in tmp_path."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (fin-meta tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


def test_notebook_is_committed_clean():
    nb = _read()
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "clear outputs"
    assert nb.cells[0].cell_type == "markdown"
    params = nb.cells[_parameters_cell(nb)].source
    for name in ("tracking_uri", "experiment", "run_id", "start", "end", "source"):
        assert f"{name} = " in params, f"parameter {name} missing"


def test_notebook_runs_against_a_tiny_experiment(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config(QUICKSTART, overrides=[*TINY, f"tracking.tracking_uri={uri}"])
    outcome = run_experiment(cfg, progress=False)
    assert outcome.run_id is not None
    run = outcome.evaluations[0]

    nb = _read()
    nb.cells[_parameters_cell(nb)].source = "\n".join([
        f"tracking_uri = {uri!r}",
        f"experiment = {cfg.tracking.experiment or cfg.name!r}",
        "run_id = None",  # the latest finished run with an agent on the source: the one just logged
        "start = None",  # the run's own test period ...
        "end = None",
        "source = None",  # ... on the run's own data
    ])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    nb.cells.append(nbformat.v4.new_code_cell(
        f"positions.to_csv({str(out_dir / 'positions.csv')!r})\n"
        f"result.stats.to_csv({str(out_dir / 'stats.csv')!r})"
    ))
    _kernel_env(tmp_path, monkeypatch)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell

    printed = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert f"run {outcome.run_id}" in printed
    stats_cell = next(c for c in nb.cells if "stats = result.stats" in c.source)
    for name in (outcome.agent.algo, "buy_and_hold", "sharpe", "max_drawdown"):
        assert name in _text(stats_cell)
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "expected the regime/positions chart and the equity curves"

    # the agent loaded from MLflow reproduces the run's test-period positions and backtest
    positions = pd.read_csv(out_dir / "positions.csv", index_col=0, parse_dates=True).iloc[:, 0]
    expected = run.positions[outcome.agent.algo]
    pd.testing.assert_series_equal(positions, expected, check_names=False, check_freq=False,
                                   check_index_type=False, rtol=1e-9, atol=1e-12)
    stats = pd.read_csv(out_dir / "stats.csv", index_col=0)
    pd.testing.assert_frame_equal(stats, run.stats.loc[stats.index, stats.columns],
                                  check_dtype=False, check_names=False, rtol=1e-9)
