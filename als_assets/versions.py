"""Code and data versions: how the UI tells which experiments are out of date.

An asset's data version names its content; Dagster marks a partition stale when a direct
dependency's data version differs from the one it was materialized from, or when the asset's
code version changed. Code versions are one constant per asset (bumped when its logic changes),
but experiment configs differ per partition, so config enters through data versions:

- `ratings`, `movies` and the splits hash their rows (`content_data_version`): re-materializing
  unchanged data gives the same version and nothing downstream goes stale; new data, or a new
  split ratio or seed in the experiment's config, gives a new version.
- assets that read more experiment config (tuned_params, als_model, evaluation,
  cold_start_report, sample_user_report) hash their code version, the config fields they read
  and their inputs' data versions (`config_data_version`): Dagster's own derived version, plus
  the config.
- factors, recommendations and similarity let Dagster derive theirs (code version + inputs).

So a config change shows in the UI as soon as the first asset reading the changed field is
materialized again. `als_model` also depends on `ratings` directly (Dagster reports staleness
against direct dependencies only), so new ratings mark every experiment's model stale at once.
"""

import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from decimal import Decimal, localcontext
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    BetaWarning,
    DataVersion,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .core.content_hash import content_aggregates, content_sums
from .partitions import EXPERIMENT_TAGS

# Dagster marks `Output(data_version=...)` beta and says so at every output that has one, i.e.
# at most steps of every run. Data versions are how this project tells the UI what is stale
# (above), and there is no other API for them: the warning is not one a user can act on. Only
# that message is silenced, and only for the parameter this project uses.
warnings.filterwarnings(
    "ignore", message=r"Parameter `data_version` of initializer `Output\.__init__`",
    category=BetaWarning)

DATA_VERSION_TAG = "dagster/data_version"
UNPARTITIONED_ASSETS = frozenset({"ratings", "movies", "experiment_leaderboard"})
OWNERS = ["team:recsys"]


def stable_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(*sections: Any) -> str:
    """A short stable hash of config values (dataclasses as dicts, or their `hashed_fields()`
    where they leave out fields that do not change results; anything JSON can show)."""
    return stable_hash([s.hashed_fields() if hasattr(s, "hashed_fields") else
                        asdict(s) if is_dataclass(s) and not isinstance(s, type) else s
                        for s in sections])


def content_version(columns: Sequence[str], n, h1, h2) -> DataVersion:
    """The data version of rows hashed by `content_aggregates` (count and both sums) under the
    names `columns`."""
    return DataVersion(stable_hash([list(columns), n, str(h1), str(h2)]))


def content_data_version(frame: DataFrame, columns: Sequence[str] | None = None) -> DataVersion:
    """A hash of a DataFrame's rows, independent of row order and partitioning, in one Spark
    aggregation: the row count and two sums of 64-bit row hashes (as decimals, so they cannot
    overflow). Equal rows give equal versions; a changed, added or removed row another."""
    return content_data_version_and_rows(frame, columns)[0]


def content_data_version_and_rows(frame: DataFrame, columns: Sequence[str] | None = None
                                  ) -> tuple[DataVersion, int]:
    """`content_data_version` and the row count it hashed, from the same aggregation."""
    columns = list(columns or frame.columns)
    n, h1, h2 = content_sums(frame.agg(*content_aggregates(columns)).first())
    return content_version(columns, n, h1, h2), n


@dataclass(frozen=True)
class ContentHash:
    """A DataFrame's row count and two order-independent sums of 64-bit row hashes (None for
    no rows): what its content data version is made of."""

    columns: tuple[str, ...]
    rows: int
    h1: Decimal | None
    h2: Decimal | None

    @property
    def data_version(self) -> DataVersion:
        return content_version(list(self.columns), self.rows, self.h1, self.h2)


def content_hashes(frames: Mapping[str, DataFrame]) -> dict[str, ContentHash]:
    """The `ContentHash` of each of several DataFrames with the same columns, in one Spark
    aggregation over their union instead of one per frame."""
    names = list(frames)
    columns = list(frames[names[0]].columns)
    labelled = None
    for i, name in enumerate(names):
        part = frames[name].select(*columns, F.lit(i).alias("_part"))
        labelled = part if labelled is None else labelled.unionByName(part)
    return labelled_content_hashes(labelled, "_part", names)


def content_data_versions(frames: Mapping[str, DataFrame]) -> dict[str, DataVersion]:
    """`content_data_version` of each of several DataFrames with the same columns, in one Spark
    aggregation over their union instead of one per frame."""
    return {name: h.data_version for name, h in content_hashes(frames).items()}


def labelled_content_hashes(labelled: DataFrame, label: str,
                            names: Sequence[str]) -> dict[str, ContentHash]:
    """The `ContentHash` of each part of a frame whose `label` column holds the part's index in
    `names` (the other columns are hashed), in one aggregation grouped by the label."""
    columns = [c for c in labelled.columns if c != label]
    rows = {r[label]: r for r in
            labelled.groupBy(label).agg(*content_aggregates(columns)).collect()}
    out = {}
    for i, name in enumerate(names):
        r = rows.get(i)
        n, h1, h2 = content_sums(r) if r is not None else (0, None, None)
        out[name] = ContentHash(tuple(columns), n, h1, h2)
    return out


def _total(values: Iterable[Decimal | None]) -> Decimal:
    # Sums of 64-bit hashes over billions of rows pass Decimal's default 28 digits.
    with localcontext() as ctx:
        ctx.prec = 60
        return sum((v or Decimal(0) for v in values), Decimal(0))


def combined(parts: Sequence[ContentHash]) -> ContentHash:
    """The `ContentHash` of the parts' rows together (the hash sums add)."""
    rows = sum(p.rows for p in parts)
    if not rows:
        return ContentHash(parts[0].columns, 0, None, None)
    return ContentHash(parts[0].columns, rows, _total(p.h1 for p in parts),
                       _total(p.h2 for p in parts))


def hashes_add_up(parts: Sequence[ContentHash], whole: ContentHash) -> bool:
    """Whether the parts hold exactly the whole's rows, as multisets: their row counts and both
    hash sums add up to the whole's. A row missing, added or held twice changes the count or
    shifts each sum by a 64-bit hash, and two independent sums cancelling by chance is a
    ~2^-128 event."""
    return (sum(p.rows for p in parts) == whole.rows
            and _total(p.h1 for p in parts) == _total([whole.h1])
            and _total(p.h2 for p in parts) == _total([whole.h2]))


def latest_data_version(context: AssetExecutionContext, asset: str) -> str | None:
    """The data version of the latest materialization of `asset` (of this run's partition for a
    per-experiment asset), as the instance recorded it."""
    partition = None if asset in UNPARTITIONED_ASSETS else context.partition_key
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset),
                           asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    if not records:
        return None
    return (records[0].asset_materialization.tags or {}).get(DATA_VERSION_TAG)


def config_data_version(context: AssetExecutionContext, code_version: str,
                        inputs: Iterable[str], config: Mapping[str, Any]) -> DataVersion:
    """Dagster's derived data version (code version and the inputs' data versions) plus the
    experiment config fields the asset reads, which differ per partition."""
    return DataVersion(stable_hash({
        "code_version": code_version,
        "inputs": {name: latest_data_version(context, name) for name in sorted(inputs)},
        "config": config_hash(dict(config)),
    }))


def experiment_tags(**extra: str) -> dict[str, str]:
    """The per-experiment asset tags (`scope=experiment`, which `--select` uses) plus more."""
    return {**EXPERIMENT_TAGS, **extra}


def fit_key(context: AssetExecutionContext, config) -> str:
    """What an ALS fit of a given params point depends on besides the params: the training
    rows (their content version) and the experiment's fit settings. Equal keys and params give
    an equivalent model (the number of ALS blocks changes only ALS's random start)."""
    return stable_hash({
        "training": latest_data_version(context, "training"),
        "implicit": asdict(config.implicit),
        "cold_start_strategy": config.cold_start_strategy,
        "seed": config.tuning.seed,
    })
