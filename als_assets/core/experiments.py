"""Experiment configs: typed, validated at load time, read from one YAML file.

Each experiment name is a partition key of every per-experiment asset, so a bad config must fail
when the code location loads, naming the experiment and the field, not halfway through a run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

TUNING_METHODS = ("holdout", "tvs", "cv")
# What a grid search optimises: RMSE of predicted ratings, or a ranking metric at K of the top-K
# lists on the held-out part, with the evaluation's relevance and seen-exclusion.
RANKING_TUNING_METRICS = ("ndcg_at_k", "map_at_k", "precision_at_k")
TUNING_METRICS = ("rmse", *RANKING_TUNING_METRICS)
# Which ratings are implicit interactions, and how much confidence each one carries.
IMPLICIT_POSITIVES = ("threshold", "all")
IMPLICIT_CONFIDENCE = ("binary", "rating", "log")
COLD_START_STRATEGIES = ("drop", "nan")
# Where an experiment's chain may end early: a tuning study needs no final model.
STOP_AFTER = ("tuned_params",)


class ExperimentConfigError(ValueError):
    """A config file, experiment or field is wrong; the message names which."""


@dataclass(frozen=True)
class AlsParams:
    """One point of the ALS hyperparameter space."""

    rank: int
    max_iter: int
    reg_param: float
    alpha: float = 1.0

    def label(self) -> str:
        return f"rank={self.rank} maxIter={self.max_iter} regParam={self.reg_param:g} alpha={self.alpha:g}"


@dataclass(frozen=True)
class SplitConfig:
    """Random train/validation/test split of the ratings (the notebook's 60/20/20, seed 42)."""

    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 42


@dataclass(frozen=True)
class GridConfig:
    """Hyperparameter lists; the grid is their cartesian product."""

    rank: tuple[int, ...] = (10,)
    max_iter: tuple[int, ...] = (10,)
    reg_param: tuple[float, ...] = (0.1,)
    alpha: tuple[float, ...] = (1.0,)

    def points(self) -> tuple[AlsParams, ...]:
        return tuple(
            AlsParams(rank=r, max_iter=m, reg_param=g, alpha=a)
            for r, m, g, a in itertools.product(self.rank, self.max_iter, self.reg_param, self.alpha)
        )


@dataclass(frozen=True)
class TuningConfig:
    """How the grid is searched.

    holdout: fit every point on `training`, score on `validation` (the notebook's manual grid).
    tvs / cv: Spark's TrainValidationSplit / CrossValidator on a `sample_fraction` of training.
    """

    method: str = "holdout"
    grid: GridConfig = field(default_factory=GridConfig)
    train_ratio: float = 0.8
    num_folds: int = 3
    sample_fraction: float = 1.0
    parallelism: int = 1
    seed: int = 42
    # None: rmse for explicit experiments, ndcg_at_k for implicit ones (ExperimentConfig.metric).
    metric: str | None = None


@dataclass(frozen=True)
class ImplicitConfig:
    """Implicit-feedback ALS: which ratings are interactions, and their confidence.

    Spark's implicit ALS reads a row's value r as preference p = [r > 0] with confidence
    c = 1 + alpha * r, and treats every absent pair as p = 0 with confidence 1.
    positives: `threshold` keeps ratings >= threshold (a low rating is then no interaction at
    all), `all` keeps every rating (rating a movie is the signal, whatever the stars).
    confidence: `binary` r = 1 (c = 1 + alpha), `rating` r = the stars (c = 1 + alpha * stars),
    `log` r = log(1 + stars) (Hu, Koren and Volinsky's damped confidence).
    """

    enabled: bool = False
    alpha: float = 40.0
    threshold: float = 4.0
    positives: str = "threshold"
    confidence: str = "binary"


@dataclass(frozen=True)
class RankingConfig:
    """Top-K recommendations and the ranking metrics computed on them."""

    k: int = 10
    relevance_threshold: float = 4.0
    exclude_seen: bool = True


@dataclass(frozen=True)
class SimilarityConfig:
    """Item-item cosine neighbours from the latent item factors."""

    top_n: int = 10
    min_ratings: int = 5


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one experiment partition needs, with the notebook's defaults."""

    name: str
    description: str = ""
    split: SplitConfig = field(default_factory=SplitConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    implicit: ImplicitConfig = field(default_factory=ImplicitConfig)
    cold_start_strategy: str = "drop"
    ranking: RankingConfig = field(default_factory=RankingConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)
    sample_user: int | None = None
    # None: the whole chain (model, factors, similarity, recommendations, evaluation, reports).
    # "tuned_params": splits and the grid search only; `als_model` and everything after it are
    # skipped in the run (not failed), so a tuning study costs only its fits.
    stop_after: str | None = None
    # True: new ratings re-run this experiment by themselves (automation.py); it changes none of
    # its results, so it is left out of the config hashes (versions.config_hash).
    automate: bool = False

    @property
    def metric(self) -> str:
        """What tuning optimises: the configured metric, else rmse (explicit) or ndcg_at_k
        (implicit: its predictions are preferences, not ratings)."""
        if self.tuning.metric is not None:
            return self.tuning.metric
        return "ndcg_at_k" if self.implicit.enabled else "rmse"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChampionRule:
    """How the experiment to serve is chosen: the best validation `metric` at `k` among the
    experiments whose validation score beats most-popular's on the same users by at least
    `min_lift` (0.10: 10% better). Validation, never test: choosing by test would make the test
    figures of the chosen model optimistic."""

    metric: str = "ndcg_at_k"
    k: int = 10
    min_lift: float = 0.10


@dataclass(frozen=True)
class ExperimentsFile:
    experiments: dict[str, ExperimentConfig]
    champion: ChampionRule


# ---------------------------------------------------------------------------------------------
# Parsing


class _Ctx:
    """Carries the experiment name and field path into error messages."""

    def __init__(self, source: str, experiment: str, path: str = ""):
        self.source, self.experiment, self.path = source, experiment, path

    def sub(self, key: str) -> _Ctx:
        return type(self)(self.source, self.experiment,
                          f"{self.path}.{key}" if self.path else key)

    def fail(self, message: str) -> ExperimentConfigError:
        where = f"{self.source}: experiment '{self.experiment}'"
        if self.path:
            where += f", field '{self.path}'"
        return ExperimentConfigError(f"{where}: {message}")


def _number(value: Any, ctx: _Ctx, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.fail(f"expected a number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ctx.fail(f"expected a whole number, got {value!r}")
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ctx.fail(f"expected a finite number, got {value!r}")
    return value


def _check(cond: bool, ctx: _Ctx, message: str) -> None:
    if not cond:
        raise ctx.fail(message)


def _number_list(value: Any, ctx: _Ctx, kind: type) -> tuple:
    if not isinstance(value, list):
        value = [value]
    _check(len(value) > 0, ctx, "the list is empty: give at least one value")
    items = tuple(_number(v, ctx, kind) for v in value)
    _check(len(set(items)) == len(items), ctx, f"duplicate values in {list(items)}")
    return items


def _section(raw: Any, ctx: _Ctx, cls: type) -> dict[str, Any]:
    """Check a mapping's keys against a dataclass's fields."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ctx.fail(f"expected a mapping, got {type(raw).__name__}")
    allowed = {f.name for f in fields(cls)}
    for key in raw:
        if key not in allowed:
            raise ctx.sub(str(key)).fail(f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return dict(raw)


def _parse_grid(raw: Any, ctx: _Ctx) -> GridConfig:
    data = _section(raw, ctx, GridConfig)
    out: dict[str, Any] = {}
    for name, kind, low, inclusive in (
        ("rank", int, 0, False),
        ("max_iter", int, 0, False),
        ("reg_param", float, 0, True),
        ("alpha", float, 0, True),
    ):
        if name not in data:
            continue
        c = ctx.sub(name)
        values = _number_list(data[name], c, kind)
        bad = [v for v in values if (v < low if inclusive else v <= low)]
        _check(not bad, c, f"values must be {'>=' if inclusive else '>'} {low}, got {bad}")
        out[name] = values
    return GridConfig(**out)


def _parse_tuning(raw: Any, ctx: _Ctx) -> TuningConfig:
    data = _section(raw, ctx, TuningConfig)
    out: dict[str, Any] = {}
    if "method" in data:
        _check(
            data["method"] in TUNING_METHODS,
            ctx.sub("method"),
            f"must be one of {', '.join(TUNING_METHODS)}, got {data['method']!r}",
        )
        out["method"] = data["method"]
    if "grid" in data:
        out["grid"] = _parse_grid(data["grid"], ctx.sub("grid"))
    if "train_ratio" in data:
        c = ctx.sub("train_ratio")
        out["train_ratio"] = _number(data["train_ratio"], c, float)
        _check(0 < out["train_ratio"] < 1, c, f"must be in (0, 1), got {out['train_ratio']}")
    if "num_folds" in data:
        c = ctx.sub("num_folds")
        out["num_folds"] = _number(data["num_folds"], c, int)
        _check(out["num_folds"] >= 2, c, f"must be >= 2, got {out['num_folds']}")
    if "sample_fraction" in data:
        c = ctx.sub("sample_fraction")
        out["sample_fraction"] = _number(data["sample_fraction"], c, float)
        _check(0 < out["sample_fraction"] <= 1, c, "must be in (0, 1]")
    if "parallelism" in data:
        c = ctx.sub("parallelism")
        out["parallelism"] = _number(data["parallelism"], c, int)
        _check(out["parallelism"] >= 1, c, "must be >= 1")
    if "seed" in data:
        out["seed"] = _number(data["seed"], ctx.sub("seed"), int)
    if "metric" in data:
        _check(data["metric"] in TUNING_METRICS, ctx.sub("metric"),
               f"must be one of {', '.join(TUNING_METRICS)}, got {data['metric']!r}")
        out["metric"] = data["metric"]
    return TuningConfig(**out)


def _parse_experiment(name: str, raw: Any, source: str) -> ExperimentConfig:
    ctx = _Ctx(source, name)
    data = _section(raw, ctx, ExperimentConfig)
    _check("name" not in data, ctx.sub("name"), "the name is the mapping key; do not repeat it")
    out: dict[str, Any] = {"name": name}
    if "description" in data:
        out["description"] = str(data["description"])

    split = _section(data.get("split"), ctx.sub("split"), SplitConfig)
    split_out: dict[str, Any] = {}
    if "ratios" in split:
        c = ctx.sub("split.ratios")
        ratios = split["ratios"]
        _check(isinstance(ratios, list) and len(ratios) == 3, c,
               f"expected three ratios [train, validation, test], got {ratios!r}")
        ratios = tuple(_number(r, c, float) for r in ratios)
        _check(all(r > 0 for r in ratios), c, f"every ratio must be > 0, got {list(ratios)}")
        _check(abs(sum(ratios) - 1.0) < 1e-6, c, f"ratios must sum to 1, got {sum(ratios):g}")
        split_out["ratios"] = ratios
    if "seed" in split:
        split_out["seed"] = _number(split["seed"], ctx.sub("split.seed"), int)
    out["split"] = SplitConfig(**split_out)

    out["tuning"] = _parse_tuning(data.get("tuning"), ctx.sub("tuning"))

    imp = _section(data.get("implicit"), ctx.sub("implicit"), ImplicitConfig)
    imp_out: dict[str, Any] = {}
    if "enabled" in imp:
        _check(isinstance(imp["enabled"], bool), ctx.sub("implicit.enabled"), "expected true/false")
        imp_out["enabled"] = imp["enabled"]
    if "alpha" in imp:
        c = ctx.sub("implicit.alpha")
        imp_out["alpha"] = _number(imp["alpha"], c, float)
        _check(imp_out["alpha"] >= 0, c, "must be >= 0")
    if "threshold" in imp:
        imp_out["threshold"] = _number(imp["threshold"], ctx.sub("implicit.threshold"), float)
    for key, allowed in (("positives", IMPLICIT_POSITIVES), ("confidence", IMPLICIT_CONFIDENCE)):
        if key in imp:
            _check(imp[key] in allowed, ctx.sub(f"implicit.{key}"),
                   f"must be one of {', '.join(allowed)}, got {imp[key]!r}")
            imp_out[key] = imp[key]
    out["implicit"] = ImplicitConfig(**imp_out)

    if "cold_start_strategy" in data:
        c = ctx.sub("cold_start_strategy")
        _check(data["cold_start_strategy"] in COLD_START_STRATEGIES, c,
               f"must be one of {', '.join(COLD_START_STRATEGIES)}, got "
               f"{data['cold_start_strategy']!r}")
        out["cold_start_strategy"] = data["cold_start_strategy"]

    rk = _section(data.get("ranking"), ctx.sub("ranking"), RankingConfig)
    rk_out: dict[str, Any] = {}
    if "k" in rk:
        c = ctx.sub("ranking.k")
        rk_out["k"] = _number(rk["k"], c, int)
        _check(rk_out["k"] >= 1, c, "must be >= 1")
    if "relevance_threshold" in rk:
        rk_out["relevance_threshold"] = _number(
            rk["relevance_threshold"], ctx.sub("ranking.relevance_threshold"), float)
    if "exclude_seen" in rk:
        _check(isinstance(rk["exclude_seen"], bool), ctx.sub("ranking.exclude_seen"),
               "expected true/false")
        rk_out["exclude_seen"] = rk["exclude_seen"]
    out["ranking"] = RankingConfig(**rk_out)

    sim = _section(data.get("similarity"), ctx.sub("similarity"), SimilarityConfig)
    sim_out: dict[str, Any] = {}
    if "top_n" in sim:
        c = ctx.sub("similarity.top_n")
        sim_out["top_n"] = _number(sim["top_n"], c, int)
        _check(sim_out["top_n"] >= 1, c, "must be >= 1")
    if "min_ratings" in sim:
        c = ctx.sub("similarity.min_ratings")
        sim_out["min_ratings"] = _number(sim["min_ratings"], c, int)
        _check(sim_out["min_ratings"] >= 1, c, "must be >= 1")
    out["similarity"] = SimilarityConfig(**sim_out)

    if data.get("sample_user") is not None:
        out["sample_user"] = _number(data["sample_user"], ctx.sub("sample_user"), int)

    if data.get("stop_after") is not None:
        c = ctx.sub("stop_after")
        _check(data["stop_after"] in STOP_AFTER, c,
               f"must be one of {', '.join(STOP_AFTER)} (or absent for the whole chain), got "
               f"{data['stop_after']!r}")
        out["stop_after"] = data["stop_after"]

    if "automate" in data:
        _check(isinstance(data["automate"], bool), ctx.sub("automate"), "expected true/false")
        out["automate"] = data["automate"]

    config = ExperimentConfig(**out)
    if config.implicit.enabled and "alpha" not in ((data.get("tuning") or {}).get("grid") or {}):
        # An implicit experiment without an alpha grid uses its implicit.alpha.
        grid = config.tuning.grid
        config = _replace_tuning_grid(config, GridConfig(
            rank=grid.rank, max_iter=grid.max_iter, reg_param=grid.reg_param,
            alpha=(config.implicit.alpha,)))
    if config.implicit.enabled and config.metric == "rmse":
        raise ctx.sub("tuning.metric").fail(
            "implicit ALS predicts preferences, not ratings: tune it on a ranking metric "
            f"({', '.join(RANKING_TUNING_METRICS)})")
    if not config.implicit.enabled and len(config.tuning.grid.alpha) > 1:
        raise ctx.sub("tuning.grid.alpha").fail("alpha only applies to implicit experiments")
    return config


def _replace_tuning_grid(config: ExperimentConfig, grid: GridConfig) -> ExperimentConfig:
    from dataclasses import replace

    return replace(config, tuning=replace(config.tuning, grid=grid))


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


def _parse_champion(raw: Any, source: str) -> ChampionRule:
    data = _section(raw, _champion_ctx(source), ChampionRule)
    out: dict[str, Any] = {}
    if "metric" in data:
        _check(data["metric"] in RANKING_TUNING_METRICS, _champion_ctx(source, "metric"),
               f"must be one of {', '.join(RANKING_TUNING_METRICS)}, got {data['metric']!r}")
        out["metric"] = data["metric"]
    if "k" in data:
        c = _champion_ctx(source, "k")
        out["k"] = _number(data["k"], c, int)
        _check(out["k"] >= 1, c, "must be >= 1")
    if "min_lift" in data:
        c = _champion_ctx(source, "min_lift")
        out["min_lift"] = _number(data["min_lift"], c, float)
        _check(out["min_lift"] > -1, c, "must be > -1 (a lift of -1 is a score of 0)")
    return ChampionRule(**out)


class _ChampionCtx(_Ctx):
    """Errors in the `champion:` section name the section and the field."""

    def fail(self, message: str) -> ExperimentConfigError:
        where = f"{self.source}: champion rule"
        if self.path:
            where += f", field 'champion.{self.path}'"
        return ExperimentConfigError(f"{where}: {message}")


def _champion_ctx(source: str, key: str = "") -> _ChampionCtx:
    return _ChampionCtx(source, "", key)


def parse_experiments(text: str, source: str = "<string>") -> dict[str, ExperimentConfig]:
    """Parse and validate a YAML document with a top-level `experiments:` mapping."""
    return parse_experiments_file(text, source).experiments


def parse_experiments_file(text: str, source: str = "<string>") -> ExperimentsFile:
    """Parse and validate a YAML document: `experiments:` and an optional `champion:` rule."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ExperimentConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or "experiments" not in doc:
        raise ExperimentConfigError(f"{source}: expected a top-level 'experiments:' mapping")
    unknown = set(doc) - {"experiments", "champion"}
    if unknown:
        raise ExperimentConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    raw = doc["experiments"]
    if not isinstance(raw, Mapping) or not raw:
        raise ExperimentConfigError(f"{source}: 'experiments' must be a non-empty mapping")
    configs: dict[str, ExperimentConfig] = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ExperimentConfigError(
                f"{source}: experiment name {name!r} must be letters, digits, '_' or '-'")
        configs[name] = _parse_experiment(name, body, source)
    return ExperimentsFile(configs, _parse_champion(doc.get("champion"), source))


def load_experiments_file(path: str | Path) -> ExperimentsFile:
    """Read and validate an experiments YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentConfigError(f"cannot read experiments file {path}: {exc.strerror}") from None
    return parse_experiments_file(text, str(path))


def load_experiments(path: str | Path) -> dict[str, ExperimentConfig]:
    """Read and validate an experiments YAML file's experiments."""
    return load_experiments_file(path).experiments
