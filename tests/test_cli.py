"""The `fin-meta` command line, end to end: real data (`sample:sp500`), real vectorbt backtests,
a real SQLite MLflow store in the test's temporary folder read back with `MlflowClient`.

Commands run in-process through `fin_meta.cli.main` (what the console script calls), so the exit
codes and the one-line error handling are the real ones; one test runs the module as a
subprocess to see `--debug` print the traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from mlflow import MlflowClient

from fin_meta import __version__, load_prices
from fin_meta.cli import app, main
from fin_meta.errors import DataError
from strategies import available_strategies

STATS_KEYS = {
    "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "turnover", "n_trades", "exposure", "gross_sharpe", "cost_drag",
}  # fmt: skip
"""The stats keys DESIGN.md promises for every backtested column."""
PERIOD = ["--start", "2015-01-01", "--end", "2016-12-31"]
"""Two years of sample:sp500 keep every backtest here small."""


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `fin-meta ARGS` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out, err


def one_line_error(err: str) -> str:
    """The error output must be exactly one `error: ...` line and no traceback."""
    lines = [line for line in err.splitlines() if line.strip() and "INFO mlflow" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def command_paths(group=None, prefix=()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the app (so a new command is covered automatically)."""
    group = group or typer.main.get_command(app)
    paths = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


# -- help, version, listing ------------------------------------------------------------------
def test_app_has_the_documented_commands():
    paths = set(command_paths())
    expected = {("data", "fetch"), ("data", "show"), ("regimes",), ("strategies",), ("backtest",),
                ("run",), ("compare",), ("ui",)}  # fmt: skip
    assert expected <= paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "fin-meta")
def test_help_of_every_command(capsys, path):
    code, out, err = cli(capsys, *path, "--help")
    assert code == 0, err
    assert "Usage:" in out and f"fin-meta {' '.join(path)}".strip() in out


def test_version(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"fin-meta {__version__}"


def test_strategies_lists_the_five_with_defaults(capsys):
    code, out, _ = cli(capsys, "strategies")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert listed == sorted(available_strategies())
    assert {"buy_and_hold", "sma_cross", "momentum", "mean_reversion", "vol_target"} <= set(listed)
    assert "defaults: fast=" in out


def test_data_show_sample(capsys):
    prices = load_prices("sample:sp500", start="2015-01-01", end="2016-12-31")
    code, out, err = cli(capsys, "data", "show", "sample:sp500", *PERIOD, "--rows", "2")
    assert code == 0, err
    assert "source: sample:sp500" in out
    assert f"rows: {len(prices)}" in out
    assert str(prices.index[0].date()) in out and str(prices.index[-1].date()) in out
    assert "close" in out


def test_regimes_table_and_png(capsys, tmp_path):
    chart = tmp_path / "charts" / "regimes.png"
    code, out, err = cli(capsys, "regimes", "sample:sp500", "--start", "2010-01-01", "--end", "2013-12-31",
                         "--plot", str(chart))  # fmt: skip
    assert code == 0, err
    assert "segments (trend_vol, causal; daily bars, 252 a year)" in out
    assert chart.is_file() and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"chart: {chart}" in out


def test_regimes_takes_detector_parameters(capsys):
    args = ("regimes", "sample:sp500", "--start", "2010-01-01", "--end", "2013-12-31")
    code, default_out, err = cli(capsys, *args)
    assert code == 0, err
    code, out, err = cli(capsys, *args, "-p", "trend_window=126", "-p", "vol_window=42")
    assert code == 0, err
    assert out != default_out  # other windows, other segments
    code, out, err = cli(capsys, *args, "-p", "trend_windw=126")
    assert code == 2 and "trend_windw" in err and len(err.strip().splitlines()) == 1


# -- backtest -----------------------------------------------------------------------------------
def test_backtest_json_is_one_object_of_stats(capsys):
    code, out, err = cli(capsys, "backtest", "-s", "sma_cross", "-s", "momentum", *PERIOD,
                         "--fees", "0", "--slippage", "0", "--json", "--no-track")  # fmt: skip
    assert code == 0, err
    stats = json.loads(out)  # the whole of stdout is one JSON document
    assert set(stats) == {"sma_cross", "momentum", "buy_and_hold"}
    for name, row in stats.items():
        assert set(row) == STATS_KEYS, name
    prices = load_prices("sample:sp500", start="2015-01-01", end="2016-12-31")
    # without costs, buy and hold from the first close earns exactly the close-to-close return
    expected = prices["close"].iloc[-1] / prices["close"].iloc[0] - 1
    assert stats["buy_and_hold"]["total_return"] == pytest.approx(expected, rel=1e-9)
    assert stats["buy_and_hold"]["exposure"] == pytest.approx(1.0)


def test_backtest_command_leaves_the_garbage_collector_off(capsys):
    """Its process ends with the command: a collection at the end would walk every object the
    imports left (the conftest fixture switches it back on for the next test)."""
    import gc

    gc.enable()
    code, _, err = cli(capsys, "backtest", "-s", "sma_cross", *PERIOD, "--no-track")
    assert code == 0, err
    assert not gc.isenabled()


def test_backtest_unknown_strategy_lists_the_available(capsys):
    code, out, err = cli(capsys, "backtest", "-s", "no_such_strategy", *PERIOD, "--no-track")
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert "no_such_strategy" in line
    for name in available_strategies():
        assert name in line


@pytest.mark.parametrize(
    ("param", "needle"),
    [("bogus=3", "bogus"), ("fast", "KEY=VALUE"), ("=3", "KEY=VALUE")],
)
def test_backtest_bad_param(capsys, param, needle):
    code, _, err = cli(capsys, "backtest", "-s", "sma_cross", "--param", param, *PERIOD, "--no-track")
    assert code == 2
    assert needle in one_line_error(err)


def test_backtest_param_without_strategy_name_when_several(capsys):
    code, _, err = cli(capsys, "backtest", "-s", "sma_cross", "-s", "momentum", "-p", "fast=5", *PERIOD, "--no-track")
    assert code == 2
    assert "sma_cross.fast" in one_line_error(err)


@pytest.mark.parametrize(
    ("source", "needle"),
    [("csv:{tmp}/missing.csv", "missing.csv"), ("nope:SPY", "unknown scheme")],
    ids=["missing-csv", "bad-scheme"],
)
@pytest.mark.parametrize("command", ["backtest", "data show", "regimes"])
def test_bad_source_is_one_line_exit_2(capsys, tmp_path, source, needle, command):
    source = source.format(tmp=tmp_path)
    args = ["backtest", "--data", source, "--no-track"] if command == "backtest" else [*command.split(), source]
    code, out, err = cli(capsys, *args)
    assert code == 2
    line = one_line_error(err)
    assert needle in line and source in line


def test_debug_raises_instead_of_one_line(capsys):
    with pytest.raises(DataError, match="unknown scheme"):
        main(["data", "show", "nope:SPY", "--debug"])


def test_debug_prints_the_traceback_from_the_console_entry():
    base = [sys.executable, "-c", "from fin_meta.cli import main; main()"]
    quiet = subprocess.run([*base, "data", "show", "nope:SPY"], capture_output=True, text=True, timeout=120)
    loud = subprocess.run([*base, "--debug", "data", "show", "nope:SPY"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "DataError" in loud.stderr


# -- backtest runs in MLflow, compare -----------------------------------------------------------
def runs_of(uri: str, experiment: str = "backtest"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_backtest_is_tracked_with_metrics_params_artifacts(capsys, tracking_uri):
    code, out, err = cli(capsys, "backtest", "-s", "sma_cross", "-p", "fast=10", *PERIOD, "--json",
                         "--tracking-uri", tracking_uri)  # fmt: skip
    assert code == 0, err
    stats = json.loads(out)
    client, runs = runs_of(tracking_uri)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    metrics, params = run.data.metrics, run.data.params
    # the first strategy is the headline column; the others carry their name
    assert metrics["test.sharpe"] == pytest.approx(stats["sma_cross"]["sharpe"], rel=1e-12)
    assert metrics["test.sharpe.buy_and_hold"] == pytest.approx(stats["buy_and_hold"]["sharpe"], rel=1e-12)
    assert {f"test.{k}" for k in STATS_KEYS} <= set(metrics)
    assert params["strategy_params.sma_cross.fast"] == "10"
    assert params["data.source"] == "sample:sp500" and float(params["fees"]) == 5e-4
    assert run.data.tags["job"] == "backtest" and run.data.tags["data.source"] == "sample:sp500"
    tables = {a.path for a in client.list_artifacts(run.info.run_id, "test")}
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"test/stats.csv", "test/results.csv"} <= tables  # the artifact names of `fin-meta run`
    assert {"plots/equity_sp500.png", "plots/equity_sp500.html"} <= plots


def test_no_track_writes_no_store(capsys, tmp_path, monkeypatch):
    store = tmp_path / "env-store.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    code, _, err = cli(capsys, "backtest", "-s", "sma_cross", *PERIOD, "--no-track")
    assert code == 0, err
    assert not store.exists()
    assert set(tmp_path.iterdir()) == before  # no mlflow.db, no mlruns/ in the working directory


def test_compare_shows_two_backtest_runs_sorted(capsys, tracking_uri):
    for fast in ("10", "30"):
        code, _, err = cli(capsys, "backtest", "-s", "sma_cross", "-p", f"fast={fast}", *PERIOD,
                           "--tracking-uri", tracking_uri)  # fmt: skip
        assert code == 0, err
    _, runs = runs_of(tracking_uri)
    assert len(runs) == 2
    code, out, err = cli(capsys, "compare", "--experiment", "backtest", "--tracking-uri", tracking_uri)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert "strategy_params.sma_cross.fast" in lines[0] and "test.sharpe" in lines[0]
    rows = {run.info.run_id[:8]: run for run in runs}
    order = sorted(rows, key=lambda rid: rows[rid].data.metrics["test.sharpe"], reverse=True)
    shown = [line.split()[0] for line in lines[1:]]
    assert shown == order  # best Sharpe first, both runs listed


def test_compare_unknown_experiment_is_one_line(capsys, tracking_uri):
    cli(capsys, "backtest", "-s", "buy_and_hold", *PERIOD, "--tracking-uri", tracking_uri)
    code, _, err = cli(capsys, "compare", "--experiment", "nope", "--tracking-uri", tracking_uri)
    assert code == 2
    assert "nope" in one_line_error(err)


# -- run: bad input fails before any work ---------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "agent.no_such_key=1"], "agent.no_such_key"),
        (["--set", "agent.iterations=-3"], "agent.iterations"),
        (["--set", "data.sources=nope:X"], "nope:X"),
    ],
    ids=["unknown-key", "bad-value", "bad-source"],
)
def test_run_bad_config_is_one_line_exit_2(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    quickstart = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
    code, out, err = cli(capsys, "run", str(quickstart), *args)
    assert code == 2 and "Traceback" not in err
    assert needle in err and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []  # failed before any store or file was created


def test_run_missing_file(capsys, tmp_path):
    code, _, err = cli(capsys, "run", str(tmp_path / "nope.yaml"), "--no-track")
    assert code == 2
    assert "nope.yaml" in one_line_error(err)


def test_a_folder_given_as_the_chart_file_is_one_line_exit_2_and_logs_nothing(capsys, tmp_path):
    store = tmp_path / "mlflow.db"
    for command in (["backtest", "-s", "sma_cross", "--tracking-uri", f"sqlite:///{store}"], ["regimes", "sample:sp500"]):
        code, _, err = cli(capsys, *command, *PERIOD, "--plot", str(tmp_path))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{tmp_path} is a folder; give the path of a file to write, e.g. {tmp_path}" in err
    assert not store.exists()  # the backtest started nothing: its chart path is checked before the work


@pytest.mark.parametrize("args", [["backtest", "--bogus"], ["regimes", "sample:sp500", "--tracking-uri", "x"]])
def test_an_unknown_option_is_a_usage_error_not_an_internal_one(capsys, args):
    code, _, err = cli(capsys, *args)
    assert code == 2 and "No such option" in err and "internal" not in err, err
