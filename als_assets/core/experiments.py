"""Experiment configs: typed pydantic dataclasses, validated at load time, read from one YAML file.

Each experiment name is a partition key of every per-experiment asset, so a bad config must fail
when the code location loads, naming the experiment and the field, not halfway through a run.
The models declare the rules; `config_rules.py` turns pydantic's errors into one line per
mistake, in the words of the YAML file (experiment, dotted field path, what is wrong).
"""

import itertools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as model

from .config_rules import (
    Bool,
    ExperimentConfigError,
    Float,
    Int,
    Section,
    Text,
    check,
    fail,
    number_list,
    one_of,
    read_yaml,
    validate_file,
)

__all__ = [
    "AlsParams", "ChampionRule", "ExperimentConfig", "ExperimentConfigError", "ExperimentsFile",
    "GridConfig", "ImplicitConfig", "RankingConfig", "SimilarityConfig", "SplitConfig",
    "TuningConfig", "load_experiments", "load_experiments_file", "parse_experiments",
    "parse_experiments_file",
]

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

# Frozen (configs are shared between steps and hashed into data versions); unknown keys are
# refused by `Section`, which names the allowed ones.
_FROZEN = ConfigDict(frozen=True, extra="forbid")

AtLeastOne = Annotated[Int, check(lambda v: v >= 1, "must be >= 1")]
Ranks = Annotated[tuple[int, ...], BeforeValidator(number_list(int)),
                  check(lambda vs: all(v > 0 for v in vs),
                        lambda vs: f"values must be > 0, got {[v for v in vs if v <= 0]}")]
NonNegatives = Annotated[tuple[float, ...], BeforeValidator(number_list(float)),
                         check(lambda vs: all(v >= 0 for v in vs),
                               lambda vs: f"values must be >= 0, got {[v for v in vs if v < 0]}")]


def _three_ratios(value: Any) -> Any:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        fail(f"expected three ratios [train, validation, test], got {value!r}")
    return value


def _ratios_ok(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    if not all(r > 0 for r in ratios):
        fail(f"every ratio must be > 0, got {list(ratios)}")
    if abs(sum(ratios) - 1.0) >= 1e-6:
        fail(f"ratios must sum to 1, got {sum(ratios):g}")
    return ratios


@dataclass(frozen=True)
class AlsParams:
    """One point of the ALS hyperparameter space (made from a grid, never read from YAML)."""

    rank: int
    max_iter: int
    reg_param: float
    alpha: float = 1.0

    def label(self) -> str:
        return f"rank={self.rank} maxIter={self.max_iter} regParam={self.reg_param:g} alpha={self.alpha:g}"


@model(config=_FROZEN)
class SplitConfig(Section):
    """Random train/validation/test split of the ratings (the notebook's 60/20/20, seed 42)."""

    ratios: Annotated[tuple[Float, Float, Float], BeforeValidator(_three_ratios),
                      AfterValidator(_ratios_ok)] = (0.6, 0.2, 0.2)
    seed: Int = 42


@model(config=_FROZEN)
class GridConfig(Section):
    """Hyperparameter lists (a single value is a list of one); the grid is their product."""

    rank: Ranks = (10,)
    max_iter: Ranks = (10,)
    reg_param: NonNegatives = (0.1,)
    alpha: NonNegatives = (1.0,)

    def points(self) -> tuple[AlsParams, ...]:
        return tuple(
            AlsParams(rank=r, max_iter=m, reg_param=g, alpha=a)
            for r, m, g, a in itertools.product(self.rank, self.max_iter, self.reg_param, self.alpha)
        )


@model(config=_FROZEN)
class TuningConfig(Section):
    """How the grid is searched.

    holdout: fit every point on `training`, score on `validation` (the notebook's manual grid).
    tvs / cv: Spark's TrainValidationSplit / CrossValidator on a `sample_fraction` of training.
    """

    method: one_of(TUNING_METHODS) = "holdout"
    grid: GridConfig = Field(default_factory=GridConfig)
    train_ratio: Annotated[Float, check(lambda v: 0 < v < 1, "must be in (0, 1), got {}")] = 0.8
    num_folds: Annotated[Int, check(lambda v: v >= 2, "must be >= 2, got {}")] = 3
    sample_fraction: Annotated[Float, check(lambda v: 0 < v <= 1, "must be in (0, 1]")] = 1.0
    parallelism: AtLeastOne = 1
    seed: Int = 42
    # None: rmse for explicit experiments, ndcg_at_k for implicit ones (ExperimentConfig.metric).
    metric: one_of(TUNING_METRICS) | None = None


@model(config=_FROZEN)
class ImplicitConfig(Section):
    """Implicit-feedback ALS: which ratings are interactions, and their confidence.

    Spark's implicit ALS reads a row's value r as preference p = [r > 0] with confidence
    c = 1 + alpha * r, and treats every absent pair as p = 0 with confidence 1.
    positives: `threshold` keeps ratings >= threshold (a low rating is then no interaction at
    all), `all` keeps every rating (rating a movie is the signal, whatever the stars).
    confidence: `binary` r = 1 (c = 1 + alpha), `rating` r = the stars (c = 1 + alpha * stars),
    `log` r = log(1 + stars) (Hu, Koren and Volinsky's damped confidence).
    """

    enabled: Bool = False
    alpha: Annotated[Float, check(lambda v: v >= 0, "must be >= 0")] = 40.0
    threshold: Float = 4.0
    positives: one_of(IMPLICIT_POSITIVES) = "threshold"
    confidence: one_of(IMPLICIT_CONFIDENCE) = "binary"


@model(config=_FROZEN)
class RankingConfig(Section):
    """Top-K recommendations and the ranking metrics computed on them."""

    k: AtLeastOne = 10
    relevance_threshold: Float = 4.0
    exclude_seen: Bool = True


@model(config=_FROZEN)
class SimilarityConfig(Section):
    """Item-item cosine neighbours from the latent item factors."""

    top_n: AtLeastOne = 10
    min_ratings: AtLeastOne = 5


@model(config=_FROZEN)
class ExperimentConfig(Section):
    """Everything one experiment partition needs, with the notebook's defaults."""

    name: str
    description: Text = ""
    split: SplitConfig = Field(default_factory=SplitConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    implicit: ImplicitConfig = Field(default_factory=ImplicitConfig)
    cold_start_strategy: one_of(COLD_START_STRATEGIES) = "drop"
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    sample_user: Int | None = None
    # None: the whole chain (model, factors, similarity, recommendations, evaluation, reports).
    # "tuned_params": splits and the grid search only; `als_model` and everything after it are
    # skipped in the run (not failed), so a tuning study costs only its fits.
    stop_after: one_of(STOP_AFTER, " (or absent for the whole chain)") | None = None
    # Re-run this experiment by itself when new ratings arrive (the automation reads it); off:
    # only when someone asks, since a grid search can cost many fits.
    automate: Bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentConfig":
        if self.implicit.enabled and self.metric == "rmse":
            fail("implicit ALS predicts preferences, not ratings: tune it on a ranking metric "
                 f"({', '.join(RANKING_TUNING_METRICS)})", at="tuning.metric")
        if not self.implicit.enabled and len(self.tuning.grid.alpha) > 1:
            fail("alpha only applies to implicit experiments", at="tuning.grid.alpha")
        return self

    @property
    def metric(self) -> str:
        """What tuning optimises: the configured metric, else rmse (explicit) or ndcg_at_k
        (implicit: its predictions are preferences, not ratings)."""
        if self.tuning.metric is not None:
            return self.tuning.metric
        return "ndcg_at_k" if self.implicit.enabled else "rmse"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hashed_fields(self) -> dict[str, Any]:
        """What the experiment computes, for the config hash that flags edited experiments:
        `automate` says when it runs, not what it computes, so switching it leaves results
        current."""
        return {key: value for key, value in asdict(self).items() if key != "automate"}


@model(config=_FROZEN)
class ChampionRule(Section):
    """How the experiment to serve is chosen: the best validation `metric` at `k` among the
    experiments whose validation score beats most-popular's on the same users by at least
    `min_lift` (0.10: 10% better). Validation, never test: choosing by test would make the test
    figures of the chosen model optimistic."""

    metric: one_of(RANKING_TUNING_METRICS) = "ndcg_at_k"
    k: AtLeastOne = 10
    min_lift: Annotated[Float, check(lambda v: v > -1,
                                     "must be > -1 (a lift of -1 is a score of 0)")] = 0.10


@dataclass(frozen=True)
class ExperimentsFile:
    experiments: dict[str, ExperimentConfig]
    champion: ChampionRule


def _with_implicit_alpha(config: ExperimentConfig, raw: Any) -> ExperimentConfig:
    """An implicit experiment without an alpha grid searches its `implicit.alpha` alone."""
    tuning = raw.get("tuning") if isinstance(raw, dict) else None
    grid = tuning.get("grid") if isinstance(tuning, dict) else None
    if not config.implicit.enabled or (isinstance(grid, dict) and "alpha" in grid):
        return config
    grid = replace(config.tuning.grid, alpha=(config.implicit.alpha,))
    return replace(config, tuning=replace(config.tuning, grid=grid))


def parse_experiments(text: str, source: str = "<string>") -> dict[str, ExperimentConfig]:
    """Parse and validate a YAML document with a top-level `experiments:` mapping."""
    return parse_experiments_file(text, source).experiments


def parse_experiments_file(text: str, source: str = "<string>") -> ExperimentsFile:
    """Parse and validate a YAML document: `experiments:` and an optional `champion:` rule."""
    doc = read_yaml(text, source)
    experiments, champion = validate_file(doc, source, ExperimentConfig, ChampionRule)
    raw = doc["experiments"]
    return ExperimentsFile(
        {name: _with_implicit_alpha(config, raw[name]) for name, config in experiments.items()},
        champion)


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
