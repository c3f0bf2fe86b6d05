"""`fin-meta report RUN_ID`: one self-contained HTML page per run, on one real SQLite MLflow
store for the module. Two real `fin-meta backtest` runs with regimes and a `compare --pbo` over
them (end to end through `fin_meta.cli.main`); a seed-set parent with two seed children and a
walk-forward run logged with the jobs' own writers (`log_evaluation`, `log_meta_test`,
`log_deflated_sharpe`, `seed_table`, `log_family_metrics`) from real vectorbt evaluations, so
that no training is needed. Then the page: every section, what each says, one file with no
fetch (plotly.js embedded) unless --cdn, logged as the run's `report.html`; bad input is one line."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from fin_meta.backtest import backtest
from fin_meta.data import load_prices
from fin_meta.metatest import CURVE_COLUMNS, SUMMARY_COLUMNS
from fin_meta.pipeline.deflate import log_deflated_sharpe
from fin_meta.pipeline.fold_runs import FOLD_METRICS
from fin_meta.pipeline.seeds.pooled import paired_sharpe_diff, seed_table
from fin_meta.pipeline.stages import evaluate, rule_positions
from fin_meta.pipeline.walk_forward import FOLDS_ARTIFACT
from fin_meta.regimes import detect_regimes
from fin_meta.reporting import NOT_LOGGED, REPORT_ARTIFACT, SECTIONS
from fin_meta.reporting.collect import FOLDS_ARTIFACT as READ_FOLDS
from fin_meta.tracking import start_run
from fin_meta.tracking.family import log_family_metrics
from fin_meta.tracking.nesting import ROLE_TAG, child_tags
from fin_meta.tracking.records import log_evaluation, log_meta_test
from tests.test_cli import cli, one_line_error

PERIOD = ["--start", "2015-01-01", "--end", "2016-12-31"]
STRATEGIES = ("sma_cross", "momentum")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating MLflow's tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def backtests(store) -> list[str]:
    """Two `fin-meta backtest` runs (oldest first; the second with `--regimes trend_vol`) and a
    `compare --pbo` over them."""
    for strategy, regimes in zip(STRATEGIES, ([], ["--regimes", "trend_vol"]), strict=True):
        with pytest.raises(SystemExit) as done:
            _main(["backtest", "-s", strategy, *PERIOD, *regimes, "--tracking-uri", store])
        assert done.value.code in (0, None)
    with pytest.raises(SystemExit) as done:
        _main(["compare", "--experiment", "backtest", "--pbo", "--blocks", "8", "--tracking-uri", store])
    assert done.value.code in (0, None)
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("backtest")
    runs = client.search_runs([exp.experiment_id], "tags.job = 'backtest'", order_by=["attributes.start_time ASC"])
    return [r.info.run_id for r in runs]


def _main(args: list[str]) -> None:
    from fin_meta.cli import main

    main(args)


def _evaluation(fast: int, seed: int = 0):
    """A real evaluation of sma_cross (`fast` bars) beside buy_and_hold over 2015-2016, with causal labels."""
    prices = load_prices("sample:sp500", start="2014-01-01", end="2016-12-31")
    labels = detect_regimes(prices, method="trend_vol")
    rules = rule_positions(prices, ["sma_cross", "buy_and_hold"], {"sma_cross": {"fast": fast, "slow": 100}}, None)
    test = prices.loc["2015-01-01":]
    return evaluate("sp500", test, prices, {}, rules, fees=5e-4, slippage=5e-4, max_position=1.0,
                    bootstrap_samples=100, seed=seed, labels=labels)


def _adaptation(agent: str, level: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A meta-test's per-segment curves and summary in `fin_meta.metatest`'s columns."""
    curves = pd.DataFrame([(agent, 0, 0, 100, 300, 132, 1, k, level * (1 + k)) for k in (0, 1, 2)],
                          columns=CURVE_COLUMNS)
    summary = pd.DataFrame([(agent, k, level * (1 + k), level * k, level * (2 + k), 1) for k in (0, 1, 2)],
                           columns=SUMMARY_COLUMNS)
    return curves, summary


@pytest.fixture(scope="module")
def family(store) -> dict[str, object]:
    """A seed-set parent (seeds 0 and 1 as child runs) and a walk-forward run of experiment `family`."""
    evals = {0: _evaluation(10, 0), 1: _evaluation(30, 1)}
    children = []
    with start_run("family", tags={ROLE_TAG: "parent", "seeds": "0,1", "job": "run"}, tracking_uri=store) as parent:
        for seed, ev in evals.items():
            tags = {**child_tags(parent.run_id, "seed", seed=str(seed)), "job": "run"}
            with start_run("family", tags=tags, tracking_uri=store) as child:
                log_meta_test(child, *_adaptation("sma_cross", 1e-4 * (seed + 1)))
                log_evaluation(child, ev, plots=False)
                log_deflated_sharpe(child, [ev])
                children.append(child.run_id)
        summary = seed_table([ev.table.reset_index() for ev in evals.values()])
        diff = paired_sharpe_diff([pd.DataFrame(ev.result.returns) for ev in evals.values()], "sma_cross",
                                  bars_per_year=252.0, n_resamples=200)
        parent.log_table(summary.merge(diff, on="strategy", how="left").assign(source="sp500"), "seeds/summary.csv")
        returns = pd.concat([pd.DataFrame(ev.result.returns).rename_axis("date").reset_index().assign(seed=s, source="sp500")
                             for s, ev in evals.items()], ignore_index=True)
        parent.log_table(returns[["seed", "source", "date", "sma_cross", "buy_and_hold"]], "seeds/test_returns.csv")
        log_family_metrics(parent, children)
    ev = evals[0]
    halves = np.array_split(np.arange(len(ev.prices)), 2)
    rows = []
    for number, bars in enumerate(halves):
        block = ev.prices.iloc[bars]
        stats = backtest(block, ev.positions.loc[block.index], fees=5e-4, slippage=5e-4).stats
        head = {"fold": number, "source": "sp500", "train_start": "2010-01-04", "train_end": "2014-12-01",
                "train_bars": 1236 + 126 * number, "trade_start": block.index[0].date(),
                "trade_end": block.index[-1].date(), "trade_bars": len(block), "seed": 0}
        rows += [{**head, "strategy": name, **{m: float(stats.loc[name, m]) for m in FOLD_METRICS}}
                 for name in stats.index]
    with start_run("family", tags={"job": "run", "walk_forward.folds": "2"}, tracking_uri=store) as wf:
        log_evaluation(wf, ev, plots=False)
        wf.log_table(pd.DataFrame(rows), FOLDS_ARTIFACT)
    return {"parent": parent.run_id, "children": children, "walk_forward": wf.run_id, "folds": pd.DataFrame(rows)}


class _Page(HTMLParser):
    """What the test reads from a page: sections and their states, external references, scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.external: list[str] = []
        self.scripts: list[int] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections[a["id"] or ""] = a["data-state"] or ""
        for key in ("src", "href", "data"):
            value = a.get(key) or ""
            if re.match(r"^(https?:)?//", value):
                self.external.append(value)
        if tag == "script":
            self._in_script = True
            self.scripts.append(0)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += len(data)


def _section(text: str, key: str) -> str:
    return text.split(f"<section id='{key}'", 1)[1].split("</section>", 1)[0]


def _report(capsys, store: str, run_id: str, out: Path, *extra: str) -> str:
    code, stdout, err = cli(capsys, "report", run_id, "--out", str(out), "--tracking-uri", store, *extra)
    assert code == 0, err
    assert f"wrote {out}" in stdout
    return out.read_text(encoding="utf-8")


def test_backtest_report_has_every_section_is_one_file_and_is_logged(capsys, store, backtests, tmp_path):
    run_id = backtests[1]
    text = _report(capsys, store, run_id[:10], tmp_path / "page.html")  # a unique prefix names the run
    page = _Page(text)
    assert list(page.sections) == list(SECTIONS)
    assert {k for k, v in page.sections.items() if v == "missing"} == {"walk-forward", "members"}
    for key in ("walk-forward", "members"):
        assert NOT_LOGGED in _section(text, key)
    assert page.external == []  # nothing fetched: plotly.js is inside
    assert max(page.scripts) > 1_000_000 and "plotly.js v" in text
    n_figures = int(re.search(r"data-figures='(\d+)'", text).group(1))
    assert n_figures == text.count('class="plotly-graph-div"') == 3  # equity, honest curve, PBO
    client = MlflowClient(store)
    run = client.get_run(run_id)
    # the results and the deflated Sharpe shown are the run's, with the N trials counted
    results = _section(text, "results")
    for column in ("sharpe", "buy_and_hold"):
        key = "test.dsr" if column == "sharpe" else f"test.dsr.{column}"
        assert f"<td>{run.data.metrics[key]:.3f}</td>" in results
    assert run.data.tags["dsr.trials"] == "2" and "N = 2 trials" in _section(text, "deflated")
    by_regime = pd.read_csv(client.download_artifacts(run_id, "test/by_regime.csv", str(tmp_path)))
    regimes = _section(text, "regimes")
    assert all(f"({n} bars)" in regimes for n in by_regime.groupby("regime")["n_bars"].max())
    pbo = client.search_runs([run.info.experiment_id], "tags.`fin_meta.role` = 'pbo'")[0]
    assert f"{pbo.data.metrics['pbo']:.2f}" in _section(text, "pbo") and pbo.info.run_id[:12] in text
    assert "Honest adaptation curve" in _section(text, "adaptation")
    logged = Path(client.download_artifacts(run_id, REPORT_ARTIFACT, str(tmp_path / "logged")))
    assert logged.read_text(encoding="utf-8") == text


def test_cdn_page_loads_plotly_from_its_cdn_only(capsys, store, backtests, tmp_path):
    run_id = backtests[0]
    text = _report(capsys, store, run_id, tmp_path / "small.html", "--cdn", "--no-log")
    page = _Page(text)
    assert len(page.external) == 1 and page.external[0].startswith("https://cdn.plot.ly/plotly-")
    assert len(text.encode()) < 1_000_000 and "plotly.js v" not in text
    names = [a.path for a in MlflowClient(store).list_artifacts(run_id)]
    assert REPORT_ARTIFACT not in names  # --no-log
    # a backtest without --regimes: no shading, no per-regime table, no honest curve, each said so
    assert page.sections["regimes"] == "missing" and "Regime labels for the shading" in _section(text, "equity")
    assert "The honest adaptation curve" in _section(text, "adaptation") and page.sections["adaptation"] == "missing"


def test_seed_set_parent_report_shows_the_seeds(capsys, store, family, tmp_path):
    text = _report(capsys, store, family["parent"], tmp_path / "parent.html", "--no-log")
    page = _Page(text)
    assert page.sections["members"] == "shown" and page.sections["results"] == "shown"
    members = _section(text, "members")
    client = MlflowClient(store)
    for seed, child_id in enumerate(family["children"]):
        child = client.get_run(child_id)
        assert f"seed {seed}" in members and child_id[:12] in members
        assert f"<td>{child.data.metrics['test.dsr']:.3f}</td>" in members
    parent = client.get_run(family["parent"]).data.metrics
    assert f"{parent['test.sharpe.mean']:.2f} ± {parent['test.sharpe.sd']:.2f}" in _section(text, "results")
    assert "sma_cross (seed 1)" in text  # each seed's meta-test curve
    assert "sma_cross seed 0" in text and "sma_cross seed 1" in text  # each seed's equity
    assert page.sections["regimes"] == "missing" and page.sections["walk-forward"] == "missing"


def test_walk_forward_report_shows_the_folds(capsys, store, family, tmp_path):
    text = _report(capsys, store, family["walk_forward"], tmp_path / "wf.html")
    page = _Page(text)
    assert page.sections["walk-forward"] == "shown"
    folds = _section(text, "walk-forward")
    for row in family["folds"].itertuples():
        assert f"{row.trade_start} .. {row.trade_end} ({row.trade_bars} bars)" in folds
        assert f"{row.sharpe:.2f} ({row.total_return:+.1%})" in folds
    assert page.sections["deflated"] == "missing" and NOT_LOGGED in _section(text, "deflated")
    assert "The meta-test adaptation curve" in _section(text, "adaptation")  # said missing
    assert page.sections["adaptation"] == "shown"  # the honest curve, from the logged returns and labels


def test_bad_run_id_is_one_line_and_writes_nothing(capsys, store, backtests, tmp_path):
    out = tmp_path / "none.html"
    code, _, err = cli(capsys, "report", "0123456789abcdef", "--out", str(out), "--tracking-uri", store)
    assert code == 2 and "matches no run" in one_line_error(err)
    code, _, err = cli(capsys, "report", "abc", "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path}/no.db")
    assert code == 2 and "no MLflow store" in one_line_error(err)
    assert not out.exists() and not (tmp_path / "no.db").exists()


def test_the_folds_artifact_is_the_one_the_walk_forward_writes():
    assert READ_FOLDS == FOLDS_ARTIFACT
