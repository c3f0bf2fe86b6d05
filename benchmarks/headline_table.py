"""The README's headline table, read back from MLflow: one seed set per experiment
(`fin-meta run FILE --seeds 0-4`), the agent beside the pooled PPO, buy-and-hold and the best rule.

Per experiment and contender: validation net Sharpe (where the file has `data.val_start`), test
net Sharpe mean ± sd over seeds, gross Sharpe, turnover and cost drag a year, max drawdown, the
deflated Sharpe ratio (mean over seeds of each child's `test.dsr`, which counts the store's
earlier trials), the agent's paired Sharpe difference to the contender with its 95% CI pooled over
seeds (what the parent logged), the in-sample net Sharpe (how much was memorised) and the wall time
of a seed. The "best rule" is chosen on the validation period (on the training period where there
is none), never on the test period.

Usage: ``python benchmarks/headline_table.py [EXPERIMENT ...] [--tracking-uri URI]``; each
experiment's latest finished parent run is read (every experiment with one when none is named).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fin_meta.tracking.nesting import ROLE_TAG, child_runs  # noqa: E402
from fin_meta.tracking.query import search_all_runs  # noqa: E402
from fin_meta.tracking.store import (  # noqa: E402
    TrackingError,
    active_experiments,
    open_client,
    resolve_tracking_uri,
)

COLUMNS = ["experiment", "contender", "val net", "test net", "gross", "turnover/yr", "cost drag/yr", "max DD",
           "DSR", "agent − it [95% CI]", "in-sample net", "min/seed"]


def fail(message: str) -> None:
    """One line on stderr, exit 2 (bad input, nothing written)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def latest_parents(client, experiments: list[str] | None) -> list:
    """The latest FINISHED seed-set parent of each named experiment (of every experiment when
    None), in the order named (by name otherwise)."""
    by_name = {e.name: e.experiment_id for e in active_experiments(client)}
    names = experiments or sorted(by_name)
    parents = []
    for name in names:
        if name not in by_name:
            fail(f"no MLflow experiment {name!r}; the store has: {', '.join(sorted(by_name))}")
        found = search_all_runs(client, [by_name[name]], max_results=1,
                                filter_string=f"tags.`{ROLE_TAG}` = 'parent' and attributes.status = 'FINISHED'")
        if found:
            parents.append((name, found[0]))
        elif experiments:
            fail(f"{name}: no finished seed set; run `fin-meta run FILE --seeds 0-4` first")
    return parents


def _suffix(column: str) -> str:
    return "" if column == "agent" else f".{column}"


def _values(children: list, period: str, stat: str, column: str) -> list[float]:
    key = f"{period}.{stat}{_suffix(column)}"
    return [run.data.metrics[key] for run in children if key in run.data.metrics]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def best_rule(children: list, columns: list[str]) -> str | None:
    """The rule with the best mean net Sharpe on validation, else in-sample; None without rules."""
    rules = [c for c in columns if c not in ("agent", "ppo", "buy_and_hold")]
    for period in ("val", "train"):
        scored = {rule: _mean(_values(children, period, "sharpe", rule)) for rule in rules}
        scored = {rule: s for rule, s in scored.items() if s is not None}
        if scored:
            return max(scored, key=scored.get)
    return None


def contender_row(experiment: str, parent, children: list, column: str, label: str) -> dict[str, str]:
    """One row of the table: the contender `column` ("agent" for the meta agent) of one seed set."""
    def mean(period: str, stat: str) -> float | None:
        """Test figures: the parent's mean over seeds; validation and in-sample: the children's."""
        if period == "test":
            return parent.data.metrics.get(f"test.{stat}{_suffix(column)}.mean")
        return _mean(_values(children, period, stat, column))

    test, sd = mean("test", "sharpe"), parent.data.metrics.get(f"test.sharpe{_suffix(column)}.sd")
    diff = parent.data.metrics.get(f"test.sharpe_diff.{column}")
    low, high = (parent.data.metrics.get(f"test.sharpe_diff.{column}.ci_{end}") for end in ("low", "high"))
    minutes = [(run.info.end_time - run.info.start_time) / 60000 for run in children if run.info.end_time]
    drag, dd = mean("test", "cost_drag"), mean("test", "max_drawdown")
    return {
        "experiment": experiment, "contender": label,
        "val net": _fmt(mean("val", "sharpe"), ".2f"),
        "test net": "–" if test is None else f"{test:.2f} ± {sd or 0.0:.2f}",
        "gross": _fmt(mean("test", "gross_sharpe"), ".2f"),
        "turnover/yr": _fmt(mean("test", "turnover"), ".1f"),
        "cost drag/yr": "–" if drag is None else f"{drag:.2%}",
        "max DD": "–" if dd is None else f"{dd:.1%}",
        "DSR": _fmt(mean("test", "dsr"), ".2f"),
        "agent − it [95% CI]": "" if diff is None else f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]",
        "in-sample net": _fmt(mean("train", "sharpe"), ".2f"),
        "min/seed": _fmt(_mean(minutes), ".1f") if column == "agent" else "",
    }


def headline_rows(client, experiment: str, parent) -> list[dict[str, str]]:
    """The agent, the pooled PPO (when trained), buy-and-hold and the best rule of one seed set."""
    children = child_runs(client, parent.info.run_id)
    if not children:
        fail(f"{experiment}: parent run {parent.info.run_id} has no child runs")
    algo = children[0].data.tags.get("agent.algo", "agent")
    columns = ["agent", *sorted({k.split(".", 2)[2] for k in children[0].data.metrics
                                 if k.startswith("test.sharpe.") and k.count(".") == 2})]
    rule = best_rule(children, columns)
    wanted = [("agent", f"{algo} (seeds {parent.data.tags.get('seeds', '?')})")]
    wanted += [(c, "pooled PPO" if c == "ppo" else c.replace("_", "-")) for c in ("ppo", "buy_and_hold") if c in columns]
    if rule is not None:
        wanted.append((rule, f"best rule: {rule}"))
    return [contender_row(experiment, parent, children, column, label) for column, label in wanted]


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*", help="MLflow experiment names (default: every one with a seed set)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    args = parser.parse_args(argv)
    uri = resolve_tracking_uri(args.tracking_uri)
    hint = f"no finished seed set in {uri}; run `fin-meta run FILE --seeds 0-4` first"
    try:
        client = open_client(uri, must_exist=True)
    except TrackingError as exc:
        if args.experiments:
            fail(str(exc))
        print(hint)  # nothing asked for, nothing to show (as `make bench` runs it): not an error
        return
    rows = [row for name, parent in latest_parents(client, args.experiments or None)
            for row in headline_rows(client, name, parent)]
    print(markdown(rows) if rows else hint)


if __name__ == "__main__":
    main()
