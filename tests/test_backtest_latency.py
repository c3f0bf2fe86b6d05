"""What makes `fin-meta backtest` start fast, checked by behaviour (the timings themselves are in
`benchmarks/cli_latency.py`): the block bootstrap draws the resamples its blocks define; the
modules the command starts with load no pandas, agents or environments (the MLflow background
process is started before them); a chart the background process draws ahead
is logged as drawn, the tables the tracker writes reach the run without waiting, and their
scratch space is removed; the job pauses the garbage collector and restores it; the run starts
before the backtest; the console entry point starts the MLflow process of a tracked backtest
before parsing and exits without tearing its modules down."""

from __future__ import annotations

import filecmp
import gc
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_meta.bootstrap import draw_blocks, resample_indices
from fin_meta.cli import _tracked_backtest
from fin_meta.pipeline import stages
from fin_meta.pipeline.backtest_job import _collector_paused, run_backtest_job
from fin_meta.plots.equity import plot_equity_png
from fin_meta.tracking import open_client
from fin_meta.tracking.background import BackgroundStore


def reference_indices(blocks):
    """The bootstrap indices of `blocks` by their plain definition (bars x resamples): each block
    copies consecutive bars from its source, modulo the length of the series."""
    n, lengths = blocks.n_bars, blocks.lengths()
    flat = np.concatenate([(source + np.arange(length)) % n for source, length in zip(blocks.sources, lengths, strict=True)])
    return flat.reshape(blocks.n_resamples, n).T


@pytest.mark.parametrize(("n_bars", "n_resamples", "block_length", "block"), [
    (503, 200, 21.0, "stationary"), (1, 4, 1.0, "stationary"), (250, 3, 1.0, "stationary"),
    (97, 50, 3.5, "circular"), (7, 5, 7.0, "circular"), (40, 6, None, "stationary"),
])
def test_block_resamples_equal_their_plain_definition(n_bars, n_resamples, block_length, block):
    for seed in range(3):
        fast, plain = np.random.default_rng(seed), np.random.default_rng(seed)
        got = resample_indices(n_bars, n_resamples, fast, block_length, block)
        blocks = draw_blocks(n_bars, n_resamples, plain, block_length, block)
        assert got.flags.c_contiguous and got.shape == (n_bars, n_resamples)  # statistics reduce along bars
        np.testing.assert_array_equal(got, reference_indices(blocks))
        assert fast.random() == plain.random()  # the same draws, the generator left at the same place
        assert set(np.arange(n_resamples) * n_bars) <= set(blocks.starts.tolist())  # each resample starts afresh


def test_the_backtest_command_starts_without_pandas_agents_or_environments():
    code = (
        "import sys\n"
        "from fin_meta.pipeline import run_backtest_job\n"
        "import fin_meta.tracking, fin_meta.tracking.background, fin_meta.tracking.worker\n"
        "print(sorted(m for m in ('pandas', 'mlflow', 'vectorbt') if m in sys.modules))\n"
        "import fin_meta.pipeline.stages\n"
        "print(sorted(m for m in ('fin_meta.agents', 'fin_meta.envs.config', 'fin_meta.metatest',\n"
        "                        'fin_meta.tracking.model') if m in sys.modules))\n"
        "from fin_meta.tracking.background import call_with_client\n"  # still named there
        "from fin_meta.tracking import start_run, load_agent\n"
        "print(call_with_client.__module__, start_run.__module__, load_agent.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second, third = done.stdout.splitlines()
    assert first == "[]", "the background process would start after these imports"
    assert second == "[]", "`fin-meta backtest` would load the agents or the environments"
    assert third == "fin_meta.tracking.remote fin_meta.tracking.run fin_meta.tracking.model"


def test_chart_drawn_ahead_and_tables_reach_the_run_without_waiting(tracking_uri, tmp_path):
    dates = pd.bdate_range("2000-01-03", periods=3000)
    rng = np.random.default_rng(0)
    equity = pd.DataFrame(np.cumprod(1.0 + rng.normal(0.0, 0.01, (3000, 4)), axis=0), index=dates,
                          columns=list("abcd"))  # pickled, more than a pipe holds: sent through a file
    draw = partial(plot_equity_png, equity)
    table = pd.DataFrame({"x": np.arange(5000.0)})
    here = plot_equity_png(equity, tmp_path / "here.png")
    store = BackgroundStore("ahead", tracking_uri)
    store.prepare_figure(draw, "plots/equity_x.png")  # the data go now: the child draws them while we go on
    assert not store.prepared(partial(plot_equity_png, equity.copy()), "plots/equity_x.png")  # other data
    equity.iloc[:, :] = 1.0  # drawn again at logging, the chart would show this
    with store.start_run(params={"p": 1}) as tracker:
        tracker.log_figure(draw, "plots/equity_x.png")  # the same draw: the file drawn ahead is logged
        tracker.log_table(table, "test/table.csv")  # written here, logged there
        tracker.log_metrics({"m": 1.0})
        scratch = store._scratch
        assert scratch is not None and any(scratch.rglob("table.csv"))
        run_id = tracker.run_id
    assert not scratch.exists()  # removed once the child has logged everything
    client = open_client(tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"m": 1.0}
    logged = Path(client.download_artifacts(run_id, "plots/equity_x.png", str(tmp_path)))
    assert filecmp.cmp(here, logged, shallow=False)
    csv = Path(client.download_artifacts(run_id, "test/table.csv", str(tmp_path)))
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_job_pauses_the_garbage_collector_and_restores_it(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with _collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() == enabled
        with pytest.raises(KeyError), _collector_paused():
            raise KeyError("x")
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize(("args", "early"), [
    (["backtest", "--data", "sample:sp500"], True), (["backtest"], True), (["backtest", "--no-track"], False),
    (["backtest", "--help"], False), (["run", "experiments/quickstart.yaml"], False), ([], False),
])
def test_only_a_tracked_backtest_starts_its_mlflow_process_before_parsing(args, early):
    assert _tracked_backtest(args) is early


def test_the_run_starts_before_the_backtest_so_its_store_work_overlaps_it(tracking_uri, monkeypatch):
    seen = []

    def evaluate(*args, **kwargs):  # what the store holds when the backtest begins
        client = open_client(tracking_uri)
        experiment = client.get_experiment_by_name("early-run")
        seen.extend(run.info.status for run in client.search_runs([experiment.experiment_id]))
        return real_evaluate(*args, **kwargs)

    real_evaluate = stages.evaluate
    monkeypatch.setattr(stages, "evaluate", evaluate)
    job = run_backtest_job("sample:sp500", ["sma_cross"], start="2015-01-01", end="2015-12-31",
                           experiment="early-run", tracking_uri=tracking_uri, background=False)
    assert seen == ["RUNNING"]
    assert open_client(tracking_uri).get_run(job.run_id).info.status == "FINISHED"


def test_the_console_entry_point_runs_exit_handlers_and_keeps_exit_codes(tmp_path):
    # the console script skips the interpreter's teardown of every module, not what exit does
    code = ("import atexit; atexit.register(print, 'exit handler ran'); "
            "from fin_meta.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, "data", "show", "nosuchsource:x"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error:") and len(done.stderr.splitlines()) == 1
    assert done.stdout.strip() == "exit handler ran"
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "backtest" in done.stdout and done.stdout.rstrip().endswith("exit handler ran")
