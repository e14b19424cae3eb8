"""Stored Python values as JSON, pandas frames as Parquet beside it: reading runs no code.

Values used to be pickled, and `pickle.load` runs whatever the file tells it to: anyone who can
write the storage root could run code in the next process that reads an asset. Here a value is
plain JSON, and the only classes a file can name are dataclasses of the `als_assets` package,
rebuilt field by field through their constructor; nothing else is imported or called.

The format is generic, so a new field or a new frozen dataclass needs no code here:

  None, bool, int, str, finite float, list     themselves
  float NaN / inf / -inf                       {"$float": "nan" | "inf" | "-inf"}
  tuple                                        {"$tuple": [...]}
  dict (keys of any type listed here)          {"$dict": [[key, value], ...]}
  numpy scalar                                 {"$numpy": dtype, "value": ...}
  numpy array (numbers or booleans)            {"$ndarray": dtype, "shape": [...], "values": ...}
  pandas DataFrame                             {"$frame": "frames/<n>.parquet"}
  dataclass of als_assets                      {"$dataclass": "module:QualName", "fields": {...}}

Anything else (a Spark object, a function, a class from another package) is refused when the
value is written, naming where in the value it sits.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT = 1
# Only dataclasses from these packages may be named by a stored file.
ALLOWED_PACKAGES = ("als_assets",)
FRAMES = "frames"


class SerializationError(ValueError):
    """A value cannot be stored, or a stored file cannot be read back; says where and why."""


def dump(value: Any, path: Path) -> None:
    """Writes `value` to `path` (JSON) and its pandas frames into `path.parent/frames/`."""
    frames: list[tuple[str, pd.DataFrame]] = []
    data = {"format": FORMAT, "value": _encode(value, "value", frames)}
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    if frames:
        (path.parent / FRAMES).mkdir()
    for n, (where, frame) in enumerate(frames):
        try:
            frame.to_parquet(path.parent / FRAMES / f"{n}.parquet")
        except (ValueError, TypeError, ImportError) as exc:  # pyarrow's errors derive from them
            raise SerializationError(f"{where}: this DataFrame cannot be stored as Parquet: "
                                     f"{' '.join(str(exc).split())}") from None
    path.write_text(text, encoding="utf-8")


def load(path: Path) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SerializationError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SerializationError(f"{path}: not a stored value of format {FORMAT}")
    return _decode(data["value"], "value", path.parent)


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _encode(value: Any, where: str, frames: list) -> Any:
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return _float(value)
    if isinstance(value, np.generic):
        if isinstance(value, (np.bool_, np.integer, np.floating)):
            item = value.item()
            return {"$numpy": value.dtype.str,
                    "value": _float(item) if isinstance(item, float) else item}
        raise SerializationError(f"{where}: numpy {value.dtype} values cannot be stored")
    if type(value) is list:
        return [_encode(v, f"{where}[{i}]", frames) for i, v in enumerate(value)]
    if type(value) is tuple:
        return {"$tuple": [_encode(v, f"{where}[{i}]", frames) for i, v in enumerate(value)]}
    if type(value) is dict:
        return {"$dict": [[_encode(k, f"{where} key {k!r}", frames),
                           _encode(v, f"{where}[{k!r}]", frames)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise SerializationError(f"{where}: numpy arrays of {value.dtype} cannot be stored")
        flat = [_float(v) if isinstance(v, float) else v for v in value.ravel().tolist()]
        return {"$ndarray": value.dtype.str, "shape": list(value.shape), "values": flat}
    if type(value) is pd.DataFrame:
        if not all(isinstance(c, str) for c in value.columns):
            raise SerializationError(f"{where}: a DataFrame is stored as Parquet, which needs "
                                     f"string column names, not {list(value.columns)!r}")
        frames.append((where, value))
        return {"$frame": f"{FRAMES}/{len(frames) - 1}.parquet"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        name = f"{cls.__module__}:{cls.__qualname__}"
        if not _allowed(cls.__module__) or _resolve(cls.__module__, cls.__qualname__) is not cls:
            raise SerializationError(
                f"{where}: {name} cannot be stored: only dataclasses defined at module level "
                f"in {', '.join(ALLOWED_PACKAGES)} are read back")
        return {"$dataclass": name, "fields": {
            f.name: _encode(getattr(value, f.name), f"{where}.{f.name}", frames)
            for f in dataclasses.fields(value)}}
    raise SerializationError(f"{where}: a {type(value).__module__}.{type(value).__qualname__} "
                             "cannot be stored as JSON")


def _allowed(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_PACKAGES)


def _resolve(module: str, qualname: str) -> Any:
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def _decode(data: Any, where: str, folder: Path) -> Any:
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_decode(v, f"{where}[{i}]", folder) for i, v in enumerate(data)]
    if not isinstance(data, dict) or len(data) == 0:
        raise SerializationError(f"{where}: unexpected {data!r}")
    if "$float" in data:
        return float(data["$float"])
    if "$tuple" in data:
        return tuple(_decode(v, f"{where}[{i}]", folder) for i, v in enumerate(data["$tuple"]))
    if "$dict" in data:
        return {_decode(k, f"{where} key", folder): _decode(v, f"{where}[{k!r}]", folder)
                for k, v in data["$dict"]}
    if "$numpy" in data:
        return _dtype(data["$numpy"], where).type(_decode(data["value"], where, folder))
    if "$ndarray" in data:
        values = [_decode(v, where, folder) for v in data["values"]]
        return np.array(values, dtype=_dtype(data["$ndarray"], where)).reshape(data["shape"])
    if "$frame" in data:
        path = (folder / data["$frame"]).resolve()
        if path.parent != (folder / FRAMES).resolve():
            raise SerializationError(f"{where}: frame file {data['$frame']!r} is outside "
                                     f"{folder / FRAMES}")
        return pd.read_parquet(path)
    if "$dataclass" in data:
        return _decode_dataclass(data, where, folder)
    raise SerializationError(f"{where}: unknown tag in {sorted(data)!r}")


def _dtype(text: str, where: str) -> np.dtype:
    dtype = np.dtype(text)
    if dtype.kind not in "biuf":
        raise SerializationError(f"{where}: numpy dtype {text!r} is not one this store writes")
    return dtype


def _decode_dataclass(data: dict, where: str, folder: Path) -> Any:
    name = data["$dataclass"]
    module, _, qualname = name.partition(":")
    # Checked before anything is imported: a file cannot make this import another package.
    if not _allowed(module):
        raise SerializationError(f"{where}: {name} is not a class of "
                                 f"{', '.join(ALLOWED_PACKAGES)}; refusing to load it")
    cls = _resolve(module, qualname)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise SerializationError(f"{where}: {name} is not a dataclass of this version of "
                                 "als_assets: materialize the asset again")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    stored = data["fields"]
    unknown = sorted(set(stored) - set(fields))
    if unknown:
        raise SerializationError(f"{where}: {name} has no field(s) {', '.join(unknown)} any "
                                 "more: materialize the asset again")
    values = {k: _decode(v, f"{where}.{k}", folder) for k, v in stored.items()}
    try:
        obj = cls(**{k: v for k, v in values.items() if fields[k].init})
    except TypeError as exc:
        raise SerializationError(f"{where}: cannot rebuild {name} from the stored fields "
                                 f"({exc}): materialize the asset again") from None
    for k, v in values.items():
        if not fields[k].init:
            object.__setattr__(obj, k, v)
    return obj
