"""A tracked run: `start_run(...)` opens an MLflow run and yields a `Tracker` to log params,
metrics, tables, figures and files; the run ends FINISHED, or FAILED when the body raises
(Ctrl-C included) and the exception goes on up (KILLED on a `StopRun`: a pruned sweep trial).
`enabled=False` yields a tracker that does nothing, so callers never branch on `--no-track`.

Non-finite metrics: NaN and +-inf are not logged as metrics (MLflow would store inf as
+-1.8e308 and NaN breaks sorting in the UI and in `compare_runs`); each one is recorded as a
tag `nonfinite.<metric>` = `nan` / `inf` / `-inf` instead (with the step, when given), so the
run shows that the value existed and what it was.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from fin_meta.fileio import atomic_path, atomic_write_text
from fin_meta.tracking.params import clean_key, flatten_params, plain_data
from fin_meta.tracking.query import search_all_runs
from fin_meta.tracking.store import (
    TrackingError,
    get_or_create_experiment,
    open_client,
    resolve_tracking_uri,
)
from fin_meta.tracking.tags import Heartbeat, run_tags, tag_items

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["StopRun", "Tracker", "start_run"]

_BATCH = 100  # MLflow's limit of params/tags per log_batch call
_FIGURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".pdf", ".html", ".gif", ".webp"}


class StopRun(Exception):  # noqa: N818 - a signal, not an error
    """Raised in `start_run` to stop its run on purpose (a pruned sweep trial): the run gets
    `tags` and ends KILLED, never FAILED nor tagged `fin_meta.error`; `start_run` sets `run_id`."""

    def __init__(self, message: str, tags: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.tags, self.run_id = dict(tags or {}), None


class Tracker:
    """Logs to one MLflow run. Built by `start_run`; a disabled tracker (`run_id is None`)
    accepts every call and does nothing. For extensions (e.g. logging a model), `client` and
    `run_id` give direct access to the run."""

    def __init__(
        self,
        client: MlflowClient | None = None,
        run_id: str | None = None,
        tracking_uri: str | None = None,
    ):
        self.client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._heartbeat = Heartbeat()  # start_run has just set the tag; log_metrics renews it

    @property
    def enabled(self) -> bool:
        """True when calls are logged to MLflow."""
        return self.run_id is not None

    # params, metrics, tags ------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        """Log a nested mapping or pydantic model as flattened params (see `flatten_params`)."""
        if not self.enabled:
            return
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for i in range(0, len(items), _BATCH):
            try:
                self.client.log_batch(self.run_id, params=items[i : i + _BATCH])
            except MlflowException as exc:  # e.g. a resumed run with a different config
                raise TrackingError(
                    f"cannot log params to MLflow run {self.run_id}: {exc.message}"
                ) from exc

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values as strings; None values are skipped)."""
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tag_items(tags).items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics (names cleaned by `clean_key`) at `step` (default 0). NaN/inf
        values are skipped and recorded as `nonfinite.<name>` tags (see the module docstring);
        a value that is not a number raises `TypeError` naming the metric."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        finite: list[Metric] = []
        nonfinite: dict[str, str] = {}
        for name, value in metrics.items():
            key = clean_key(name)
            number = _as_float(name, value)
            if math.isfinite(number):
                finite.append(Metric(key, number, stamp, step or 0))
            else:
                nonfinite[f"nonfinite.{key}"] = str(number) + (
                    "" if step is None else f" (step {step})"
                )
        for i in range(0, len(finite), 1000):
            self.client.log_batch(self.run_id, metrics=finite[i : i + 1000])
        tags = {**nonfinite, **self._heartbeat.due()}
        if tags:
            self.set_tags(tags)

    def log_stats(
        self,
        stats: Mapping[str, float] | pd.Series | pd.DataFrame,
        prefix: str = "test.",
        main: str | None = None,
        step: int | None = None,
    ) -> None:
        """Log backtest stats as metrics named `<prefix><stat>`: a dict/Series as is; a
        DataFrame (index = strategy columns, columns = stats) gives `test.sharpe` for the `main`
        column (default: the first row) and `test.sharpe.<column>` for every other column, so
        names sort and group in the MLflow UI. A missing trailing dot on `prefix` is added."""
        if not self.enabled:
            return
        if prefix and not prefix.endswith("."):
            prefix += "."
        if not isinstance(stats, pd.DataFrame):
            self.log_metrics({f"{prefix}{k}": v for k, v in dict(stats).items()}, step=step)
            return
        if stats.empty:
            return
        rows = [str(c) for c in stats.index]
        main_row = rows[0] if main is None else str(main)
        if main_row not in rows:
            raise ValueError(
                f"log_stats: main column {main_row!r} is not in the stats index {rows}"
            )
        metrics: dict[str, float] = {}
        for row_name, row in zip(rows, stats.itertuples(index=False), strict=True):
            suffix = "" if row_name == main_row else f".{row_name}"
            metrics.update(
                {f"{prefix}{stat}{suffix}": v for stat, v in zip(stats.columns, row, strict=True)}
            )
        self.log_metrics(metrics, step=step)

    # artifacts ------------------------------------------------------------------------------
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a local file or folder into the run's artifacts under `artifact_path` (default:
        the artifact root), keeping its name: `plots/equity.png`, `checkpoint/agent.json`."""
        if not self.enabled:
            return
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"cannot log artifact {path}: no such file or folder")
        if path.is_dir():
            folder = (
                path.name if artifact_path is None else f"{artifact_path.rstrip('/')}/{path.name}"
            )
            self.client.log_artifacts(self.run_id, str(path), artifact_path=folder)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_figure_file(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a saved figure (PNG/SVG/PDF/JPEG or an interactive HTML page) as an artifact."""
        if not self.enabled:
            return
        _check_figure("log_figure_file", path)
        self.log_artifact(path, artifact_path)

    def log_figure(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        """Log the figure `draw(path)` writes as `artifact_file` (e.g. `"plots/equity_SPY.png"`);
        nothing is drawn when tracking is disabled."""
        _check_figure("log_figure", artifact_file)
        self._log_written(artifact_file, draw)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Log `text` as the artifact file `artifact_file` (e.g. `"notes/summary.md"`)."""
        self._log_written(artifact_file, lambda target: atomic_write_text(target, text))

    def log_dict(self, data: Mapping[str, Any] | Any, artifact_file: str) -> None:
        """Log a mapping (or pydantic model) as YAML (`.yaml`/`.yml`) or JSON (anything else)."""
        if not self.enabled:
            return
        plain = plain_data(data)
        if PurePosixPath(artifact_file).suffix.lower() in {".yaml", ".yml"}:
            text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(plain, indent=2) + "\n"
        self.log_text(text, artifact_file)

    def log_table(self, df: pd.DataFrame, artifact_file: str) -> None:
        """Log a DataFrame as a CSV artifact (index included when it is not a plain range)."""
        index = not isinstance(df.index, pd.RangeIndex)

        def write(target: Path) -> None:
            with atomic_path(target) as tmp:
                df.to_csv(tmp, index=index)

        self._log_written(artifact_file, write)

    def download_artifact(
        self, artifact_path: str, dst_dir: str | Path | None = None
    ) -> Path | None:
        """Download `artifact_path` of this run (a file or folder, e.g. the last checkpoint of a
        resumed run) into `dst_dir` (default: a new temporary folder); its local path, or None
        when tracking is disabled."""
        if not self.enabled:
            return None
        local = self.client.download_artifacts(
            self.run_id, artifact_path, None if dst_dir is None else str(dst_dir)
        )
        return Path(local)

    def _log_written(self, artifact_file: str, write: Callable[[Path], None]) -> None:
        """Write `artifact_file` atomically in a scratch folder with `write`, then log it."""
        if not self.enabled:
            return
        rel = PurePosixPath(artifact_file)
        if rel.is_absolute() or ".." in rel.parts or not rel.name:
            raise ValueError(
                f"artifact_file must be a relative path inside the run, got {artifact_file!r}"
            )
        with tempfile.TemporaryDirectory(prefix="fin-meta-artifact-") as scratch:
            target = Path(scratch) / rel.name
            write(target)
            parent = str(rel.parent)
            self.log_artifact(target, None if parent == "." else parent)

    # end ------------------------------------------------------------------------------------
    def _end(self, status: str, error: BaseException | None = None) -> None:
        if not self.enabled:
            return
        if error is not None:
            self.set_tags({"fin_meta.error": f"{type(error).__name__}: {error}".rstrip(": ")})
        self.client.set_terminated(self.run_id, status=status)


def _check_figure(method: str, path: str | Path) -> None:
    if Path(path).suffix.lower() not in _FIGURE_SUFFIXES:
        raise ValueError(f"{method}: {path} is not a figure file ({', '.join(sorted(_FIGURE_SUFFIXES))})")


def _as_float(name: str, value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {name!r} must be a number, got {value!r}") from None


def _reopen_run(
    client: MlflowClient, experiment_id: str, run_ref: str, tags: dict[str, str]
) -> str:
    """Mark the run `run_ref` (a full id or a unique prefix, e.g. the 8 characters that
    `fin-meta compare` shows) of the experiment RUNNING again and tag the resumption; returns
    its full id. Its old `fin_meta.error` tag moves to `resume.previous_error`."""
    matches = [
        r for r in search_all_runs(client, [experiment_id]) if r.info.run_id.startswith(run_ref)
    ]
    if len(matches) != 1:
        found = ", ".join(r.info.run_id for r in matches[:5])
        problem = f"matches several runs ({found})" if matches else "matches no run"
        raise TrackingError(
            f"resume: {run_ref!r} {problem} of this experiment in {client.tracking_uri}; "
            "pass a full run id (fin-meta compare lists them)"
        )
    run = matches[0]
    run_id = run.info.run_id
    tags = dict(tags)
    tags["resume.command"] = tags.pop("command", "")
    previous_error = run.data.tags.get("fin_meta.error")
    if previous_error is not None:
        tags["resume.previous_error"] = previous_error
        client.delete_tag(run_id, "fin_meta.error")
    client.update_run(run_id, status="RUNNING")
    Tracker(client, run_id).set_tags(tags)
    return run_id


@contextlib.contextmanager
def start_run(
    experiment: str,
    *,
    run_name: str | None = None,
    params: Mapping[str, Any] | Any | None = None,
    tags: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    enabled: bool = True,
    command_line: str | None = None,
    resume_run_id: str | None = None,
) -> Iterator[Tracker]:
    """Open an MLflow run in `experiment` (created when missing) on the store of
    `resolve_tracking_uri(tracking_uri)`, log `params` (flattened) and the tags of `run_tags`,
    and yield its `Tracker`. The run ends FINISHED, or FAILED (with a `fin_meta.error` tag) when
    the body raises anything, KeyboardInterrupt included, or KILLED with its `tags` on a
    `StopRun`; the exception is re-raised.
    `sys.exit(0)` inside counts as success. `enabled=False` touches no store and yields a
    tracker that does nothing.

    `resume_run_id` (a run id or unique prefix in `experiment`) continues that run instead of
    creating one: it is marked RUNNING again, its command is kept and the new one is tagged
    `resume.command`; `params` must equal the ones it was logged with (`TrackingError`
    naming the changed params otherwise)."""
    if not enabled:
        yield Tracker()
        return
    uri = resolve_tracking_uri(tracking_uri)
    client = open_client(uri)
    experiment_id = get_or_create_experiment(client, experiment)
    tags_now = run_tags(command_line, tags)
    if resume_run_id:
        run_id = _reopen_run(client, experiment_id, resume_run_id, tags_now)
    else:
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags_now).info.run_id
    tracker = Tracker(client, run_id, uri)
    try:
        if params is not None:
            tracker.log_params(params)
        yield tracker
    except BaseException as exc:
        ok = isinstance(exc, SystemExit) and exc.code in (0, None)
        stop = isinstance(exc, StopRun)
        try:
            if stop:
                exc.run_id = run_id
                tracker.set_tags(exc.tags)
            tracker._end("FINISHED" if ok else "KILLED" if stop else "FAILED", None if ok or stop else exc)
        except Exception as end_exc:  # keep the user's exception; say the run may look RUNNING
            exc.add_note(f"(fin-meta could not mark MLflow run {run_id} as ended: {end_exc!r})")
        raise
    tracker._end("FINISHED")
