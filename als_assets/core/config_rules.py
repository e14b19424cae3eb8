"""The field types of the experiment configs and the wording of their errors.

pydantic checks the experiments YAML against the models in `experiments.py`; this module gives
those models their field types (numbers that refuse booleans and strings, whole numbers, true /
false, one of a list) and turns pydantic's errors into lines a user can act on without knowing
pydantic: `FILE: experiment 'NAME', field 'tuning.grid.rank': values must be > 0, got [0]`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass as model
from pydantic_core import ArgsKwargs, PydanticCustomError

_ERROR = "als_config"


class ExperimentConfigError(ValueError):
    """A config file, experiment or field is wrong; the message names which."""


def fail(message: str, at: str = "") -> None:
    """Raise a config error inside a validator; `at` is a field path below the one validated."""
    raise PydanticCustomError(_ERROR, "{message}", {"message": message, "at": at})


def check(test: Callable[[Any], bool], message: str | Callable[[Any], str]) -> AfterValidator:
    """A rule on an already typed value; `message` may show the value as `{}`."""

    def validate(value: Any) -> Any:
        if not test(value):
            fail(message(value) if callable(message) else message.format(value))
        return value

    return AfterValidator(validate)


def _number(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"expected a number, got {value!r}")
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                fail(f"expected a whole number, got {value!r}")
            return int(value)
        if not math.isfinite(value):
            fail(f"expected a finite number, got {value!r}")
        return float(value)

    return convert


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        fail("expected true/false")
    return value


Int = Annotated[int, BeforeValidator(_number(int))]
Float = Annotated[float, BeforeValidator(_number(float))]
Bool = Annotated[bool, BeforeValidator(_boolean)]
# Free text (a description): anything YAML reads, shown as text.
Text = Annotated[str, BeforeValidator(lambda value: "" if value is None else str(value))]


def number_list(kind: type) -> Callable[[Any], tuple]:
    """A non-empty list of distinct numbers; a single value is a list of one."""
    convert = _number(kind)

    def validate(value: Any) -> tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            fail("the list is empty: give at least one value")
        numbers = tuple(convert(item) for item in items)
        if len(set(numbers)) != len(numbers):
            fail(f"duplicate values in {list(numbers)}")
        return numbers

    return validate


def one_of(choices: tuple[str, ...], hint: str = "") -> Any:
    """One of `choices` (a Literal type), with an error that lists them."""

    def validate(value: Any) -> Any:
        if value not in choices:
            fail(f"must be one of {', '.join(choices)}{hint}, got {value!r}")
        return value

    return Annotated[Literal.__getitem__(choices), BeforeValidator(validate)]


@model(frozen=True)
class Section:
    """Base of the config models: a YAML section is a mapping of known keys (or empty)."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, (ArgsKwargs, cls)):  # built in Python, not read from YAML
            return data
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            fail(f"expected a mapping, got {type(data).__name__}")
        allowed = sorted(f.name for f in dataclasses.fields(cls))
        for key in data:
            if key not in allowed:
                fail(f"unknown key; allowed: {', '.join(allowed)}", at=str(key))
        return dict(data)


def _lines(error: ValidationError, where: str, prefix: str = "") -> str:
    """One line per mistake: `where`, the field's dotted path (list positions left out: the
    message shows the value), and what is wrong."""
    lines: list[str] = []
    for item in error.errors():
        ctx = item.get("ctx") or {}
        parts = [str(p) for p in item["loc"] if not isinstance(p, int)]
        parts += [p for p in str(ctx.get("at") or "").split(".") if p]
        message = ctx["message"] if item["type"] == _ERROR else item["msg"]
        field = f", field '{prefix}{'.'.join(parts)}'" if parts else ""
        line = f"{where}{field}: {message}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def validate_section(model_type: type, data: Any, where: str, prefix: str = "") -> Any:
    """`data` as a `model_type`, or an ExperimentConfigError naming `where` and the field."""
    try:
        return TypeAdapter(model_type).validate_python(data)
    except ValidationError as exc:
        raise ExperimentConfigError(_lines(exc, where, prefix)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ExperimentConfigError(f"{source}: not valid YAML: {exc}") from None


def validate_file(doc: Any, source: str, experiment_type: type,
                  champion_type: type) -> tuple[dict[str, Any], Any]:
    """The experiments (each named by its mapping key) and the champion rule of a YAML
    document; errors name the file, then the experiment or the champion rule, then the field."""
    if not isinstance(doc, Mapping) or "experiments" not in doc:
        raise ExperimentConfigError(f"{source}: expected a top-level 'experiments:' mapping")
    unknown = set(doc) - {"experiments", "champion"}
    if unknown:
        raise ExperimentConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    raw = doc["experiments"]
    if not isinstance(raw, Mapping) or not raw:
        raise ExperimentConfigError(f"{source}: 'experiments' must be a non-empty mapping")
    configs: dict[str, Any] = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ExperimentConfigError(
                f"{source}: experiment name {name!r} must be letters, digits, '_' or '-'")
        where = f"{source}: experiment '{name}'"
        if isinstance(body, Mapping) and "name" in body:
            raise ExperimentConfigError(
                f"{where}, field 'name': the name is the mapping key; do not repeat it")
        data = {**body, "name": name} if isinstance(body, Mapping) else \
            {"name": name} if body is None else body
        configs[name] = validate_section(experiment_type, data, where)
    champion = validate_section(champion_type, doc.get("champion"), f"{source}: champion rule",
                                prefix="champion.")
    return configs, champion
