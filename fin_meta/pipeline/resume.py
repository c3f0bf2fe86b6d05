"""`fin-meta run --resume RUN_ID`: the run's own config, read from its `config.yaml` artifact, so
no flags are needed; a config given as well must agree with it. Nothing here changes the run:
`tracking.checkpoints.find_resumable` refuses a FINISHED, unknown or config-less run first.
"""

from __future__ import annotations

from fin_meta.config import ExperimentConfig, config_to_dict, parse_config
from fin_meta.errors import ConfigError
from fin_meta.tracking import TrackingError, flatten_params
from fin_meta.tracking.checkpoints import ResumePoint, find_resumable, resume_command

__all__ = ["resume_config"]

_MAY_DIFFER = ("tracking.tracking_uri",)
"""Config keys a resumed run may be given differently: where the store is, not what runs."""


def resume_config(run_ref: str, *, tracking_uri: str | None = None,
                  config: ExperimentConfig | None = None) -> tuple[ExperimentConfig, ResumePoint]:
    """The config of run `run_ref` (read from its `config.yaml`) and its `ResumePoint`, found in
    `tracking_uri` (None: `config`'s store, else the default one). A `config` given too must
    equal the run's (apart from `tracking.tracking_uri`): `TrackingError` naming what differs."""
    if config is not None and not config.tracking.enabled:
        raise ConfigError("--resume continues a tracked run: drop --no-track / tracking.enabled=false")
    point = find_resumable(run_ref, tracking_uri or (config.tracking.tracking_uri if config is not None else None))
    try:
        own = parse_config(point.config)
    except ConfigError as exc:
        raise ConfigError(f"resume: the config.yaml of run {point.run_id} does not validate any more: {exc}") from None
    if config is not None:
        given, logged = flatten_params(config_to_dict(config)), flatten_params(config_to_dict(own))
        changed = [k for k in sorted(given.keys() | logged.keys())
                   if k not in _MAY_DIFFER and given.get(k) != logged.get(k)]
        if changed:
            shown = ", ".join(f"{k}: {logged.get(k)!r} in the run, {given.get(k)!r} given" for k in changed[:3])
            raise TrackingError(
                f"resume: the config differs from run {point.run_id}'s own ({shown}); resume it as it was "
                f"({resume_command(point.run_id, point.tracking_uri)}) or start a new run"
            )
    return own, point
