"""Turning fin-meta objects into what MLflow stores: flat string params, valid metric/param
names, and a short hash that identifies a loaded price history."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.errors import DataError

__all__ = ["MAX_PARAM_LENGTH", "flatten_params", "clean_key", "prices_hash", "plain_data"]

MAX_PARAM_LENGTH = 500
"""Longest param value logged. MLflow 3.17 accepts 6,000 characters, but older tracking servers
reject more than 500; longer values are cut to this length, ending in `...` (the full config
is logged as a YAML artifact anyway)."""

_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]")


def clean_key(key: str) -> str:
    """`key` as a valid MLflow metric/param/tag name: characters other than letters, digits,
    `_ - . / space` become `_` (e.g. `sma(10,50)` -> `sma_10_50_`)."""
    key = _BAD_KEY_CHARS.sub("_", str(key))
    return re.sub(r"/{2,}", "/", key).strip("/") or "_"


def plain_data(obj: Any) -> Any:
    """`obj` as plain JSON types (dict/list/str/float/int/bool/None): pydantic models are
    dumped, numpy scalars unwrapped, anything else (paths, dates) turned into `str`."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _param_text(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 3] + "..."
    return text


def flatten_params(nested: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, str]:
    """Flatten a nested mapping (or pydantic model) into MLflow params: dotted keys
    (`{"agent": {"lr": 1e-3}}` -> `{"agent.lr": "0.001"}`), lists of scalars joined with
    `", "`, lists holding mappings indexed (`baselines.0.name`), empty containers as `{}`/`[]`,
    keys cleaned by `clean_key`, values cut to `MAX_PARAM_LENGTH` characters."""
    data = plain_data(nested)
    if not isinstance(data, Mapping):
        raise TypeError(
            f"flatten_params needs a mapping or pydantic model, got {type(nested).__name__}"
        )
    flat: dict[str, str] = {}
    _flatten_into(flat, data, prefix.rstrip("."))
    return flat


def _flatten_into(flat: dict[str, str], value: Any, key: str) -> None:
    if isinstance(value, Mapping) and value:
        for sub, item in value.items():
            _flatten_into(flat, item, f"{key}.{sub}" if key else str(sub))
        return
    if isinstance(value, list) and any(isinstance(item, (Mapping, list)) for item in value):
        for i, item in enumerate(value):
            _flatten_into(flat, item, f"{key}.{i}" if key else str(i))
        return
    if isinstance(value, list):
        text = "[]" if not value else ", ".join(str(item) for item in value)
    elif isinstance(value, Mapping):
        text = "{}"
    else:
        text = str(value)
    flat[clean_key(key)] = _param_text(text)


def prices_hash(prices: pd.DataFrame | Mapping[str, pd.DataFrame], length: int = 16) -> str:
    """A short hex SHA-256 digest (`length` characters) of prices: column names, the index
    (datetimes as int64 nanoseconds, so pandas' datetime resolution does not matter) and the
    values as float64. Stable across processes and machines; column order and, for a mapping
    of several assets, key order do not change it; any changed price, date or name does."""
    digest = hashlib.sha256()
    if isinstance(prices, Mapping):
        for name in sorted(prices, key=str):
            digest.update(f"asset:{name}\n".encode())
            _hash_frame(digest, prices[name], str(name))
    else:
        _hash_frame(digest, prices, "prices")
    return digest.hexdigest()[:length]


def _hash_frame(digest: Any, frame: pd.DataFrame, name: str) -> None:
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"prices_hash: {name} is a {type(frame).__name__}, expected a pandas DataFrame"
        )
    frame = frame.reindex(columns=sorted(frame.columns, key=str))
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"prices_hash: {name} has non-numeric columns ({exc}); pass only price columns"
        ) from exc
    values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        index_bytes = index.as_unit("ns").asi8.tobytes()
    else:
        index_bytes = "\x1f".join(map(str, index)).encode()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(np.int64(len(index)).tobytes())
    digest.update(index_bytes)
    digest.update(np.ascontiguousarray(values).tobytes())
