"""The report's tables as display frames (strings, ready for `html_table`): the results with
their CIs and deflated Sharpe ratios, the per-regime breakdown, the walk-forward folds, a seed
set's summary over seeds, the member runs of a parent and the PBO analyses. Units: Sharpe ratios
annualised; returns, drawdowns and cost drag as percentages; turnover per year; PSR and DSR are
probabilities (0..1)."""

from __future__ import annotations

import html
import math

import pandas as pd

__all__ = ["folds_table", "html_table", "members_table", "pbo_table", "regime_table", "results_table",
           "seed_summary_table"]


def _num(value: object, fmt: str = "{:.2f}") -> str:
    """`value` formatted, or an en dash when it is missing or not finite."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–" if value is None or value == "" else str(value)
    return fmt.format(number) if math.isfinite(number) else "–"


def _pct(value: object) -> str:
    return _num(value, "{:+.1%}")


def html_table(frame: pd.DataFrame, caption: str | None = None, classes: str = "table") -> str:
    """`frame` (strings) as an escaped HTML table (CSS `classes`) with the index as the first column."""
    body = frame.reset_index().to_html(escape=True, border=0, classes=classes, na_rep="–", index=False)
    return (f"<p class='caption'>{html.escape(caption)}</p>" if caption else "") + body


def results_table(results: pd.DataFrame, deflated: pd.DataFrame | None) -> pd.DataFrame:
    """`results.csv` (by strategy, best net Sharpe first) with the PSR and DSR beside each Sharpe."""
    rows = {}
    for strategy, r in results.iterrows():
        d = deflated.loc[strategy] if deflated is not None and strategy in deflated.index else None
        rows[strategy] = {
            "net Sharpe": _num(r.get("sharpe")),
            "95% CI": f"[{_num(r.get('sharpe_ci_low'))}, {_num(r.get('sharpe_ci_high'))}]",
            "PSR": _num(None if d is None else d["psr"], "{:.3f}"),
            "DSR": _num(None if d is None else d["dsr"], "{:.3f}"),
            "gross Sharpe": _num(r.get("gross_sharpe")),
            "return": _pct(r.get("total_return")),
            "CAGR": _pct(r.get("cagr")),
            "max DD": _pct(r.get("max_drawdown")),
            "turnover/yr": _num(r.get("turnover"), "{:.1f}"),
            "cost drag/yr": _num(r.get("cost_drag"), "{:.2%}"),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("strategy")


def regime_table(by_regime: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    """`by_regime.csv` as regimes (rows, with their bars) x strategies: net Sharpe (total return)."""
    frame = by_regime.copy()
    frame["cell"] = [f"{_num(s)} ({_pct(r)})" for s, r in zip(frame["sharpe"], frame["total_return"], strict=True)]
    table = frame.pivot(index="regime", columns="column", values="cell")
    table = table[list(dict.fromkeys(frame["column"]))]
    bars = frame.groupby("regime")["n_bars"].max() if "n_bars" in frame else None
    label = [f"{names.get(int(k), f'regime {k}')} ({int(bars[k]) if bars is not None else '?'} bars)"
             for k in table.index]
    return table.set_axis(label, axis=0).rename_axis("regime (bars)").rename_axis(columns=None)


def folds_table(folds: pd.DataFrame) -> pd.DataFrame:
    """`walk_forward/folds.csv` as one row per fold (and source): the training and traded bars,
    then each strategy's net Sharpe (total return) in that fold."""
    frame = folds.copy()
    frame["cell"] = [f"{_num(s)} ({_pct(r)})" for s, r in zip(frame["sharpe"], frame["total_return"], strict=True)]
    keys = ["fold", "source"]
    table = frame.pivot(index=keys, columns="strategy", values="cell")[list(dict.fromkeys(frame["strategy"]))]
    first = frame.drop_duplicates(keys).set_index(keys)
    table.insert(0, "trained on", first["train_start"].astype(str) + " .. " + first["train_end"].astype(str)
                 + " (" + first["train_bars"].astype(str) + " bars)")
    table.insert(1, "traded", first["trade_start"].astype(str) + " .. " + first["trade_end"].astype(str)
                 + " (" + first["trade_bars"].astype(str) + " bars)")
    return table.rename_axis(columns=None)


def seed_summary_table(summary: pd.DataFrame, metrics: dict[str, float]) -> pd.DataFrame:
    """`seeds/summary.csv` as mean ± sd over seeds, the DSR's mean ± sd (metrics `test.dsr.mean`,
    `test.dsr.<strategy>.mean`, ...) and Δ Sharpe (agent minus the strategy) with its paired CI."""
    agents = summary.loc[summary["sharpe_diff"].isna(), "strategy"] if "sharpe_diff" in summary else summary["strategy"]
    headline = str(agents.iloc[0]) if len(agents) else None  # the agent: no Δ against itself
    several = summary["source"].nunique() > 1
    rows = {}
    for _, r in summary.iterrows():
        strategy = str(r["strategy"])
        prefix = f"test.{r['source']}.dsr" if several else "test.dsr"
        key = prefix if strategy == headline else f"{prefix}.{strategy}"
        label = f"{r['source']}: {strategy}" if several else strategy
        rows[label] = {
            "seeds": str(r.get("seeds", "")),
            "net Sharpe": f"{_num(r['sharpe_mean'])} ± {_num(r['sharpe_sd'])}",
            "DSR": f"{_num(metrics.get(key + '.mean'), '{:.3f}')} ± {_num(metrics.get(key + '.sd'), '{:.3f}')}",
            "gross Sharpe": f"{_num(r['gross_sharpe_mean'])} ± {_num(r['gross_sharpe_sd'])}",
            "return": f"{_pct(r['total_return_mean'])} ± {_num(r['total_return_sd'], '{:.1%}')}",
            "max DD": f"{_pct(r['max_drawdown_mean'])} ± {_num(r['max_drawdown_sd'], '{:.1%}')}",
            "Δ Sharpe": _num(r.get("sharpe_diff")),
            "paired 95% CI": ("" if pd.isna(r.get("sharpe_diff")) else
                              f"[{_num(r.get('sharpe_diff_ci_low'))}, {_num(r.get('sharpe_diff_ci_high'))}]"),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("strategy")


def members_table(members: pd.DataFrame) -> pd.DataFrame:
    """The child runs of a parent (`collect._members`): one row each."""
    return pd.DataFrame({
        "run": members["run_id"].str[:12].to_numpy(),
        "status": members["status"].to_numpy(),
        "net Sharpe": [_num(v) for v in members["test.sharpe"]],
        "DSR": [_num(v, "{:.3f}") for v in members["test.dsr"]],
        "PSR": [_num(v, "{:.3f}") for v in members["test.psr"]],
        "trials": members["trials"].to_numpy(),
        "return": [_pct(v) for v in members["test.total_return"]],
        "max DD": [_pct(v) for v in members["test.max_drawdown"]],
    }, index=pd.Index(members["member"], name="member"))


def pbo_table(pbo: pd.DataFrame) -> pd.DataFrame:
    """The `fin-meta compare --pbo` analyses covering the run: PBO, P(out-of-sample loss), ..."""
    return pd.DataFrame({
        "period": pbo["period"].to_numpy(),
        "runs": pbo["runs"].to_numpy(),
        "blocks": pbo["blocks"].to_numpy(),
        "bars": pbo["bars"].to_numpy(),
        "PBO": [_num(v) for v in pbo["pbo"]],
        "P(OOS loss)": [_num(v, "{:.0%}") for v in pbo["prob_oos_loss"]],
        "median logit": [_num(v, "{:+.2f}") for v in pbo["median_logit"]],
    }, index=pd.Index(pbo["pbo_run"].str[:12], name="PBO run"))
