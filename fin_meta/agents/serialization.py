"""The save format of every agent: a directory holding

* `agent.json` — `format_version`, `algo`, `hparams`, `env_config`, `spaces` (observation size,
  action kind and bounds), `fin_meta_version`, `torch_version`, plus algorithm extras;
* `weights.pt` — a dict `{name: state_dict}` of tensors, loaded with `torch.load(weights_only=True)`;
* `training_state.pt` (optional) — what a later `fit` continues from (random streams, optimiser
  moments: `fin_meta.agents.training`), loaded the same way. Absent when the agent was never
  fitted or was saved for deployment only or by an older fin-meta; older versions ignore it, so
  the layout stays format 1.

Written atomically (`fin_meta.fileio.atomic_dir`): a crash never leaves a half-written agent.
Every problem on load is an `AgentError` that names it.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from fin_meta.constants import __version__
from fin_meta.errors import AgentError
from fin_meta.fileio import atomic_dir

if TYPE_CHECKING:
    import torch

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "TRAINING_STATE_FILE",
    "save_agent_dir",
    "read_manifest",
    "read_weights",
    "read_training_state",
    "load_module_state",
    "validate_model",
]

FORMAT_VERSION: int = 1
"""Version of the on-disk layout; bump it when it changes incompatibly."""
MANIFEST_FILE = "agent.json"
WEIGHTS_FILE = "weights.pt"
TRAINING_STATE_FILE = "training_state.pt"
_REQUIRED = ("format_version", "algo", "hparams", "env_config", "spaces")


def _versions() -> dict[str, str]:
    import torch

    return {"fin_meta_version": __version__, "torch_version": torch.__version__}


def save_agent_dir(
    path: str | Path,
    *,
    algo: str,
    hparams: BaseModel,
    env_config: BaseModel,
    spaces: Mapping[str, Any],
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    extra: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write an agent directory at `path` (replacing an existing one atomically), with
    `training_state.pt` when a `training_state` is given: tensors are moved to CPU so an agent
    trained on CUDA loads anywhere. Returns the path."""
    import torch

    manifest = {
        "format_version": FORMAT_VERSION,
        "algo": algo,
        **_versions(),
        "hparams": hparams.model_dump(mode="json"),
        "env_config": env_config.model_dump(mode="json"),
        "spaces": dict(spaces),
        "extra": dict(extra or {}),
    }
    cpu = _to_cpu(weights)
    path = Path(path)
    with atomic_dir(path) as tmp:
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        torch.save(cpu, tmp / WEIGHTS_FILE)
        if training_state is not None:
            torch.save(_to_cpu(training_state), tmp / TRAINING_STATE_FILE)
    return path


def _to_cpu(value: Any) -> Any:
    """`value` with every tensor in its nested dicts, lists and tuples detached and on CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check `agent.json` of a saved agent directory."""
    path = Path(path)
    if not path.exists():
        raise AgentError(f"no saved agent at {path}: the directory does not exist")
    if not path.is_dir():
        raise AgentError(f"{path} is a file; a saved agent is a directory with {MANIFEST_FILE} and {WEIGHTS_FILE}")
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise AgentError(f"{path} is not a saved agent: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentError(f"{file} is corrupt (not valid JSON: {exc})") from exc
    if not isinstance(manifest, dict):
        raise AgentError(f"{file} is corrupt: expected a JSON object")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise AgentError(f"{file} lacks the keys {missing}; it was not written by fin-meta's save()")
    version = manifest["format_version"]
    if not isinstance(version, int):
        raise AgentError(f"{file}: format_version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise AgentError(
            f"{path} was saved in agent format {version} by fin-meta "
            f"{manifest.get('fin_meta_version', '?')}; this fin-meta reads format <= {FORMAT_VERSION}: upgrade fin-meta"
        )
    return manifest


def validate_model(model_cls: type[BaseModel], data: Any, what: str, path: str | Path) -> BaseModel:
    """`model_cls.model_validate(data)`, any validation problem re-raised as `AgentError`."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise AgentError(f"{Path(path) / MANIFEST_FILE}: invalid {what}: {exc}") from exc


def _torch_load(file: Path, what: str, expected: str) -> dict[str, Any]:
    """`torch.load(file, weights_only=True)` on CPU: a dict (`expected` describes it), or an
    `AgentError` naming `file`."""
    import torch

    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise AgentError(f"{file} is corrupt or not a fin-meta {what} file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(loaded, dict):
        raise AgentError(f"{file} is not a fin-meta {what} file (expected {expected})")
    return loaded


def read_weights(path: str | Path, names: tuple[str, ...] = ()) -> dict[str, dict[str, torch.Tensor]]:
    """Load `weights.pt` on CPU with `weights_only=True`; check that every name in `names` is
    present."""
    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise AgentError(f"{Path(path)} is not a complete saved agent: {WEIGHTS_FILE} is missing")
    weights = _torch_load(file, "weights", "a dict of state dicts")
    absent = [n for n in names if n not in weights]
    if absent:
        raise AgentError(f"{file} lacks the state of {absent}")
    return weights


def read_training_state(path: str | Path) -> dict[str, Any] | None:
    """Load `training_state.pt` on CPU with `weights_only=True`; None when the directory has
    none (an agent saved for deployment, before its first `fit`, or by an older fin-meta)."""
    file = Path(path) / TRAINING_STATE_FILE
    return _torch_load(file, "training state", "a dict") if file.is_file() else None


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """`module.load_state_dict(state)` strictly; missing/unexpected keys or shape mismatches
    (weights that do not match the config in agent.json) become an `AgentError`."""
    try:
        module.load_state_dict(dict(state), strict=True)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AgentError(
            f"the saved weights of the {what} do not match its config in {MANIFEST_FILE} ({first} ...); "
            "the directory is corrupt or was edited"
        ) from exc
