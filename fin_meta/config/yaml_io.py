"""Reading experiment files: YAML with line numbers, `--set` overrides, and pydantic errors
turned into one readable line per problem. `parse_override` is THE KEY=VALUE parser (the CLI's
`--set`, the benchmarks' `--set`).

This module knows nothing about the experiment's fields: `fin_meta.config.experiment` passes its root
model in. A model class can describe keys that depend on the data (the agent section, whose
keys depend on `algo`) with a classmethod `config_keys(raw) -> dict[key, annotation] | None`
(None: any key, or not knowable yet).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from fin_meta.errors import ConfigError

__all__ = [
    "YamlDoc",
    "Override",
    "parse_yaml",
    "read_yaml",
    "parse_override",
    "apply_overrides",
    "check_override_paths",
    "keys_at",
    "dotted",
    "field_error",
    "format_errors",
]

Loc = tuple[str | int, ...]

# YAML 1.1 (PyYAML) reads `1e-3` as a string; YAML 1.2 and every user read it as a number.
_EXP_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that reads `1e-3` as a float and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping of `node`; a key given twice is a ConstructorError naming both lines."""
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"duplicate key {key_node.value!r} (first given on line {seen[key_node.value]}); "
                    "keep only one", key_node.start_mark,
                )
            seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


@dataclass
class YamlDoc:
    """A parsed YAML document: the data and its node tree (for line numbers)."""

    data: Any
    node: yaml.Node | None
    source: str

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node of `loc` present in the file (None without a file)."""
        node = self.node
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == str(part):
                        child, line = value, key.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
                    line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse YAML `text` (`source` names it in errors). Bad YAML -> `ConfigError` with the line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return YamlDoc(data=data, node=node, source=source)


def read_yaml(path: str | Path) -> YamlDoc:
    """Read a YAML file whose top level is a mapping. A missing file, bad YAML or another top
    level -> `ConfigError` (with the line number, and the nearby files when the name is wrong)."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            names = sorted(p.name for p in path.parent.glob("*.y*ml"))
            close = difflib.get_close_matches(path.name, names, n=1)
            if close:
                hint = f"; did you mean {str(path.parent / close[0])!r}?"
            elif names:
                hint = f"; files there: {', '.join(names)}"
        raise ConfigError(f"experiment file {str(path)!r} not found{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read experiment file {str(path)!r}: {exc}") from None
    doc = parse_yaml(text, source=str(path))
    if doc.data is None:
        raise ConfigError(f"{path}: the file is empty; start from experiments/quickstart.yaml")
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{path}:1: the top level must be a mapping of keys (name:, data:, agent:, ...), "
            f"not a {type(doc.data).__name__}"
        )
    return doc


# ----------------------------------------------------------------------------- overrides


@dataclass(frozen=True)
class Override:
    """One `--set KEY=VALUE`: the dotted key split into parts and the YAML-parsed value."""

    text: str
    path: tuple[str, ...]
    value: Any = field(compare=False)


def parse_override(text: str, flag: str = "--set", example: str = "agent.lr=1e-3") -> Override:
    """Parse `agent.lr=1e-3`: the value is read as YAML (`3`, `0.5`, `true`, `null`, `[a, b]`,
    `2012-12-31` become int, float, bool, None, list, date); anything else stays a string.
    `flag` and `example` name the option in errors (`--set`, or `--param` with `window=20`)."""
    key, sep, value = text.partition("=")
    parts = tuple(p.strip() for p in key.strip().split("."))
    if not sep or not all(parts):
        raise ConfigError(f"{flag} {text!r}: expected KEY=VALUE, e.g. {flag} {example}")
    parsed = parse_yaml(value, source=f"{flag} {text}").data
    return Override(text=text, path=parts, value=parsed)


def apply_overrides(data: dict[str, Any], overrides: Iterable[Override]) -> dict[str, Any]:
    """Return a copy of `data` with each override set (missing sections are created)."""
    out = _deep_copy(data)
    for ov in overrides:
        node = out
        for i, part in enumerate(ov.path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"--set {ov.text}: {'.'.join(ov.path[: i + 1])} holds a "
                    f"{type(child).__name__}, not a section; set it as a whole instead"
                )
            node = child
        node[ov.path[-1]] = ov.value
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def check_override_paths(root: type[BaseModel], data: Mapping[str, Any], overrides: Iterable[Override]) -> None:
    """`ConfigError` (one line per bad override) when an override names a key the schema does not
    have; the line lists the valid keys at that level. Keys below free-form mappings pass."""
    problems = []
    for ov in overrides:
        for depth in range(len(ov.path)):
            keys = keys_at(root, ov.path[:depth], data)
            if keys is None:
                break
            if ov.path[depth] not in keys:
                problems.append(f"--set {ov.text}: {dotted(ov.path[: depth + 1])}: "
                                f"{unknown_key_message(ov.path[depth], ov.path[:depth], keys)}")
                break
    if problems:
        raise ConfigError("\n".join(problems))


# ----------------------------------------------------------------------------- the schema


def _unwrap(tp: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_keys(tp: Any, raw: Any) -> dict[str, Any] | None:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        hook = getattr(tp, "config_keys", None)
        if hook is not None:
            return hook(raw if isinstance(raw, Mapping) else {})
        return {name: f.annotation for name, f in tp.model_fields.items()}
    return None


def keys_at(root: type[BaseModel], loc: Sequence[str | int], data: Any) -> dict[str, Any] | None:
    """The keys allowed in the mapping at `loc` (key -> annotation), or None where any key is
    allowed (a free-form mapping such as `regimes.params`) or `loc` leads nowhere."""
    tp: Any = root
    raw = data
    for part in loc:
        keys = _model_keys(tp, raw)
        if keys is not None:
            if part not in keys:
                return None
            tp = keys[part]
        else:
            tp = _unwrap(tp)
            origin, args = get_origin(tp), get_args(tp)
            if origin is list and isinstance(part, int) and args:
                tp = args[0]
            elif origin is dict and len(args) == 2:
                tp = args[1]
            else:
                return None
        if isinstance(raw, Mapping):
            raw = raw.get(part)
        elif isinstance(raw, list) and isinstance(part, int) and 0 <= part < len(raw):
            raw = raw[part]
        else:
            raw = None
    return _model_keys(tp, raw)


# ----------------------------------------------------------------------------- errors


def dotted(loc: Sequence[str | int]) -> str:
    """`("evaluation", "baselines", 2)` -> `evaluation.baselines[2]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_error(model: str, loc: Loc, message: str, value: Any) -> ValidationError:
    """A `ValidationError` for one key, to raise inside a validator: pydantic then reports it
    at the key's full path (e.g. `data.test_start`) instead of at the enclosing section."""
    detail = InitErrorDetails(type=PydanticCustomError("fin_meta", message), loc=loc, input=value)
    return ValidationError.from_exception_data(model, [detail])


def unknown_key_message(key: str | int, parent: Sequence[str | int], keys: Iterable[str]) -> str:
    """`unknown key 'x' (did you mean 'y'?); valid keys in a.b: ...` for `key` under `parent`."""
    valid = list(keys)
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f" in {dotted(parent)}" if parent else " at the top level"
    return f"unknown key {str(key)!r}{hint}; valid keys{where}: {', '.join(valid)}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: Mapping[str, Any], root: type[BaseModel], data: Any) -> str:
    kind, loc, msg = err["type"], tuple(err["loc"]), str(err["msg"])
    if kind == "extra_forbidden":
        keys = keys_at(root, loc[:-1], data) or {}
        return unknown_key_message(loc[-1], loc[:-1], keys)
    if kind == "missing":
        return "required key is missing; add it"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a section of keys (a YAML mapping), got {_short(err.get('input'))}"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", msg)
    if kind == "fin_meta":
        return msg
    return f"{msg[:1].lower()}{msg[1:]}, got {_short(err.get('input'))}"


def format_errors(
    exc: ValidationError,
    *,
    root: type[BaseModel],
    data: Any,
    doc: YamlDoc | None,
    overrides: Sequence[Override] = (),
) -> list[str]:
    """One line per problem: `file:line: dotted.key: what is wrong` (a problem in a key set by
    `--set` names the override instead of a line)."""
    source = doc.source if doc is not None else "<config>"
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        by = [ov for ov in overrides if loc[: len(ov.path)] == ov.path or ov.path[: len(loc)] == loc]
        if by and loc:
            where = f"{source} (--set {by[-1].text})"
        else:
            line = doc.line_of(loc) if doc is not None else None
            where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {dotted(loc) or '(top level)'}: {_describe(err, root, data)}")
    return lines
