"""MLflow tracking for fin-meta: one place to import from.

- `start_run(experiment, params=..., tags=...)` -> a context yielding a `Tracker` (params,
  metrics, stats, tables, figures, files); FAILED on any exception, Ctrl-C included.
- `compare_runs(...)`, `latest_run_id(...)`: read runs back (the `fin-meta compare` table; a
  RUNNING run whose process died shows as STALE: its `fin_meta.heartbeat` tag stopped).
- `resolve_tracking_uri`, `ui_command`, `launch_ui`: which store, and its UI (`fin-meta ui`).
- `flatten_params`, `prices_hash`: config -> params, prices -> a short identifying hash.

Metric names sort and group in the MLflow UI: `test.sharpe` (the main strategy column),
`test.sharpe.buy_and_hold` (the others), `train.return`, ... MLflow itself is imported only
when a run is opened or read, and each name here on first use, so importing this module stays fast.

The pieces: `store` (URI, client, experiments; a new SQLite store is created under a file
lock), `params` (params, names, hashes), `tags` (version, command, git, heartbeat), `run` (runs
and the Tracker), `query` (reading runs back), `ui` (the UI), `model` (the agent as an MLflow
model; `load_agent` for `runs:/` URIs), `checkpoints` (resume), `records` (what the jobs log:
`log_evaluation`, `log_meta_test`, ...), `background` / `remote` / `worker` / `spawn` (MLflow in
a second process for `fin-meta backtest`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fin_meta.lazy import lazy_exports

if TYPE_CHECKING:
    from fin_meta.tracking.model import load_agent
    from fin_meta.tracking.params import MAX_PARAM_LENGTH, clean_key, flatten_params, prices_hash
    from fin_meta.tracking.query import compare_runs, latest_run_id
    from fin_meta.tracking.run import Tracker, start_run
    from fin_meta.tracking.store import TrackingError, open_client, resolve_tracking_uri
    from fin_meta.tracking.tags import git_info, run_tags
    from fin_meta.tracking.ui import launch_ui, ui_command

# public name -> the module of this package that defines it: each is imported on first use, so that
# importing a submodule (the MLflow background process, `fin-meta backtest`) does not load the agents
_LAZY: dict[str, str] = {
    "load_agent": "model",
    **dict.fromkeys(("MAX_PARAM_LENGTH", "clean_key", "flatten_params", "prices_hash"), "params"),
    **dict.fromkeys(("compare_runs", "latest_run_id"), "query"),
    **dict.fromkeys(("Tracker", "start_run"), "run"),
    **dict.fromkeys(("TrackingError", "open_client", "resolve_tracking_uri"), "store"),
    **dict.fromkeys(("git_info", "run_tags"), "tags"),
    **dict.fromkeys(("launch_ui", "ui_command"), "ui"),
}

__all__ = [
    "MAX_PARAM_LENGTH",
    "Tracker",
    "TrackingError",
    "clean_key",
    "compare_runs",
    "flatten_params",
    "git_info",
    "latest_run_id",
    "load_agent",
    "launch_ui",
    "open_client",
    "prices_hash",
    "resolve_tracking_uri",
    "run_tags",
    "start_run",
    "ui_command",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__, globals())
