"""Small frozen dataclass configs that serialise to JSON / YAML and back.

``from_dict`` (and ``from_yaml`` / ``from_json`` / ``from_file``) reject unknown keys and values of the wrong type
with a :class:`ConfigError` that names the key, so a typo in a ``--config FILE.yaml`` fails before any compute.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from .errors import FeaturescopeError

T = TypeVar("T", bound="Config")


class ConfigError(FeaturescopeError, ValueError):
    """A config file or dict has an unknown key or a value of the wrong type."""


def _plain(x: object) -> object:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in typing.cast(Sequence[object], x)]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in typing.cast(dict[object, object], x).items()}
    if isinstance(x, Path):
        return str(x)
    return x


def _type_name(tp: object) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: object, tp: object, where: str) -> object:
    """``value`` checked against the annotation ``tp`` (lists become tuples for tuple / Sequence fields, ints are
    accepted as floats, a dict becomes a nested Config). Raises :class:`ConfigError` naming ``where``."""
    origin = get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        errors: list[str] = []
        for arm in get_args(tp):
            try:
                return coerce(value, arm, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} is not a {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in get_args(tp))}")
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return tp.from_dict(typing.cast(Mapping[str, object], value), where=f"{where}.")
        raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (tuple, Sequence, list) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        items = list(typing.cast(Sequence[object], value))
        args = get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(items):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(items)}")
            return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
        arm = args[0] if args else Any
        return tuple(coerce(v, arm, f"{where}[{i}]") for i, v in enumerate(items))
    if origin in (dict, Mapping) or tp in (dict,):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(typing.cast(Mapping[object, object], value))
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: ``to_dict`` / ``to_json`` / ``to_yaml`` and ``from_dict`` / ``from_file`` (unknown keys and wrong
    types are a :class:`ConfigError` naming the key)."""

    def to_dict(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], _plain(self))

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), indent=2, **kw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls: type[T], d: object, where: str = "") -> T:
        """``d``: a mapping of field -> value (anything else is a ConfigError, so a YAML list or scalar fails)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a mapping of settings, got {type(d).__name__}")
        d = typing.cast(Mapping[str, object], d)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {', '.join(where + u for u in unknown)}; known: {', '.join(names)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, object] = {}
        for name in names:
            if name in d:
                kwargs[name] = coerce(d[name], hints.get(name, Any), f"{cls.__name__}.{where}{name}")
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[T], s: str) -> T:
        return cls.from_dict(json.loads(s))

    @classmethod
    def from_yaml(cls: type[T], s: str) -> T:
        return cls.from_dict(yaml.safe_load(s) or {})

    @classmethod
    def from_file(cls: type[T], path: str | Path) -> T:
        """A config from a ``.yaml`` / ``.yml`` / ``.json`` file."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        text = p.read_text()
        try:
            return cls.from_json(text) if p.suffix == ".json" else cls.from_yaml(text)
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            raise ConfigError(
                f"config file {p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}"
            ) from None
