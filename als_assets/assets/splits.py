"""Per-experiment train / validation / test splits of the ratings."""

from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DataVersion,
    Output,
)
from pyspark.sql import DataFrame

from ..checks import SPLITS_DISJOINT, gate
from ..core.modeling import SPLIT_LABEL, Splits, split_overlap_summary, write_splits
from ..core.storage import StoredCopy, VersionedStore
from ..io_managers import stored_path_of
from ..partitions import experiment_config
from ..resources import SparkResource
from ..versions import (
    DATA_VERSION_TAG,
    ContentHash,
    combined,
    content_hashes,
    experiment_tags,
    hashes_add_up,
    labelled_content_hashes,
    latest_data_version,
    stable_hash,
)
from .experiment_asset import experiment_asset

SPLITS_CODE_VERSION = "splits-1"
SPLIT_TAGS = experiment_tags(stage="split")
SPLIT_NAMES = ("training", "validation", "test")
# How many recent `training` materializations are searched for a split to reuse.
REUSE_LOOKBACK = 200


@experiment_asset(
    outs={
        "training": "Ratings the models are fitted on.",
        "validation": "Ratings the hyperparameters are chosen on.",
        "test": "Ratings held out for the final evaluation only.",
    },
    group="splits",
    kinds=("spark", "parquet"),
    tags=SPLIT_TAGS,
    code_version=SPLITS_CODE_VERSION,
    check_specs=[SPLITS_DISJOINT],
)
def splits(context: AssetExecutionContext, spark: SparkResource, ratings):
    """Random split of `ratings` with the experiment's ratios and seed."""
    config = experiment_config(context)
    key = split_key(ratings, config.split.ratios, config.split.seed)
    earlier = find_stored_split(context.instance, key) if key else None
    if earlier is not None:
        yield from _reuse(context, config, key, earlier)
        return
    with VersionedStore(spark.root).staging(f"splits-{context.partition_key}") as directory:
        written = write_splits(ratings, config.split.ratios, config.split.seed, directory)
        parts = written.splits
        # The splits' content hashes are their data versions (hashing the rows captures both
        # the ratings and the split config), in one pass over the written files. They also
        # prove the check: the ratings hold no duplicate pair (ratings_valid), so splits that
        # together hold exactly the ratings' rows are disjoint and complete.
        hashes = labelled_content_hashes(parts.labelled, SPLIT_LABEL, SPLIT_NAMES)
        counts, problems = _prove(context, ratings, parts, hashes)
        yield from gate([AssetCheckResult(
            asset_key="training", check_name=SPLITS_DISJOINT.name, passed=not problems,
            description="; ".join(problems) or "disjoint and complete", metadata=counts)])
        total = counts["ratings"]
        for name, frame, path in zip(SPLIT_NAMES, (parts.training, parts.validation,
                                                   parts.test), written.paths, strict=True):
            # The IO manager links the files just written instead of writing them again; an
            # empty split has no files and is written as an empty frame.
            value = StoredCopy("dataframe", path) if path else frame
            yield Output(value, output_name=name, data_version=hashes[name].data_version,
                         metadata=_split_metadata(context, config, key, counts[name],
                                                  counts[name] / total if total else 0.0))


def _prove(context: AssetExecutionContext, ratings: DataFrame, parts: Splits,
           hashes: dict[str, ContentHash]) -> tuple[dict, list[str]]:
    """The check's counts and problems. Cheapest first: the splits' hashes add up to the data
    version the ratings were recorded with (no pass over the ratings); else to the ratings'
    own hash as read here (one pass: ratings not from this instance's store, or recorded
    under another version); else the pairs are counted to say what is missing or repeated."""
    together = combined([hashes[name] for name in SPLIT_NAMES])
    counts = {"ratings": together.rows, **{name: hashes[name].rows for name in SPLIT_NAMES},
              "sum_of_splits": together.rows}
    if together.rows and together.data_version.value == latest_data_version(context,
                                                                             "ratings"):
        counts["proof"] = ("row count and row-hash sums of the splits add up to the ratings' "
                           "recorded data version")
        return counts, []
    whole = content_hashes({"ratings": ratings})["ratings"]
    counts["ratings"] = whole.rows
    if hashes_add_up([hashes[name] for name in SPLIT_NAMES], whole):
        counts["proof"] = "row count and row-hash sums of the splits add up to the ratings'"
        return counts, []
    # Only a failing split pays for counting which pairs are missing or repeated.
    counts = split_overlap_summary(ratings, parts)
    problems = []
    if counts["sum_of_splits"] != counts["ratings"]:
        problems.append(f"splits hold {counts['sum_of_splits']} rows, "
                        f"ratings {counts['ratings']}")
    repeated = counts["sum_of_splits"] - counts["distinct_pairs_in_splits"]
    if repeated:
        problems.append(f"{repeated} pairs are in more than one split")
    return counts, problems or ["the splits' rows differ from the ratings' rows"]


def _split_metadata(context: AssetExecutionContext, config, key: str, rows: int,
                    share: float) -> dict:
    return {
        "experiment": context.partition_key,
        "rows": rows,
        "share": share,
        "ratios": str(list(config.split.ratios)),
        "seed": config.split.seed,
        "split_key": key,
    }


def split_key(ratings: DataFrame, ratios, seed: int) -> str:
    """What a split is a function of. randomSplit is deterministic for the same input files read
    into the same partitions (it sorts within each partition and samples it with seed +
    partition index), so equal keys mean equal rows in each split. Ratings not read from the
    store have no key ("") and are always split anew."""
    stored = stored_path_of(ratings)
    if stored is None:
        return ""
    return stable_hash({
        "code_version": SPLITS_CODE_VERSION,
        "stored": stored,
        "partitions": ratings.rdd.getNumPartitions(),
        "ratios": [float(r) for r in ratios],
        "seed": int(seed),
    })


@dataclass(frozen=True)
class StoredSplit:
    """One split (training, validation or test) as an earlier materialization recorded it."""

    key: str
    partition: str
    run_id: str
    path: str
    data_version: str
    rows: int
    share: float

    @classmethod
    def from_record(cls, record) -> "StoredSplit | None":
        mat = record.asset_materialization
        meta, tags = mat.metadata, mat.tags or {}
        if "split_key" not in meta or "storage_path" not in meta or DATA_VERSION_TAG not in tags:
            return None
        return cls(key=meta["split_key"].value, partition=mat.partition, run_id=record.run_id,
                   path=meta["storage_path"].value, data_version=tags[DATA_VERSION_TAG],
                   rows=int(meta["rows"].value), share=meta["share"].value)


def find_stored_split(instance: DagsterInstance, key: str) -> dict[str, StoredSplit] | None:
    """The latest materialization of all three splits (one partition, one run) made with
    `key` whose stored files still exist, by split name; or None."""
    for record in instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("training")), limit=REUSE_LOOKBACK).records:
        found = StoredSplit.from_record(record)
        if found is None or found.key != key:
            continue
        entries = {"training": found}
        for name in SPLIT_NAMES[1:]:
            sibling = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(name),
                                   asset_partitions=[found.partition]), limit=5).records
            match = [e for e in map(StoredSplit.from_record, sibling)
                     if e is not None and e.key == key and e.run_id == found.run_id]
            if not match:
                break
            entries[name] = match[0]
        else:
            if all(Path(e.path).exists() for e in entries.values()):
                return entries
    return None


def _reuse(context: AssetExecutionContext, config, key: str,
           earlier: dict[str, StoredSplit]):
    """Store the earlier split's files (linked, not rewritten) as this partition's splits.

    Its check passed when it was made (a failed blocking check writes nothing), and equal keys
    mean equal rows, so the counts are the earlier ones."""
    source = earlier["training"].partition
    rows = {name: earlier[name].rows for name in SPLIT_NAMES}
    total = sum(rows.values())
    counts = {"ratings": total, **rows, "sum_of_splits": total,
              "proof": f"the split of experiment '{source}' (same ratings files, ratios and "
                       "seed), whose check passed when it was made"}
    yield AssetCheckResult(
        asset_key="training", check_name=SPLITS_DISJOINT.name, passed=True,
        description=f"disjoint and complete (the split of experiment '{source}', reused)",
        metadata={**counts, "reused_split_of": source})
    for name in SPLIT_NAMES:
        entry = earlier[name]
        yield Output(StoredCopy("dataframe", entry.path), output_name=name,
                     data_version=DataVersion(entry.data_version),
                     metadata={**_split_metadata(context, config, key, entry.rows, entry.share),
                               "reused_split_of": source})
