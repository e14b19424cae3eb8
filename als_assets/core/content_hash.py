"""An order-independent hash of a DataFrame's rows as Spark aggregates, so it can ride along in
any aggregation that already reads the rows (the sources' validation pass, the splits' counts)."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F


def content_aggregates(columns: Sequence[str]) -> list[Column]:
    """`n` (rows) and `h1`, `h2`: two sums of 64-bit row hashes of `columns`' values, as decimals
    so they cannot overflow. Equal multisets of rows give equal results whatever the order and
    partitioning; a changed, added or removed row changes them."""
    cols = [F.col(c) for c in columns]
    return [
        F.count(F.lit(1)).alias("n"),
        F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h1"),
        F.sum(F.xxhash64(F.lit("als_assets"), *cols).cast("decimal(38,0)")).alias("h2"),
    ]
