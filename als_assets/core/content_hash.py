"""An order-independent hash of a DataFrame's rows as Spark aggregates, so it can ride along in
any aggregation that already reads the rows (the sources' validation pass, the splits' counts)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pyspark.sql import Column
from pyspark.sql import functions as F

# Each 64-bit row hash is summed in three slices, each as a 64-bit integer sum: the signed top
# 32 bits and two unsigned 16-bit slices. Spark sums decimal(38,0) with arbitrary-precision
# arithmetic, row by row; long sums are plain additions. The slices recombine on the driver to
# the same exact sum, and cannot overflow below 2**31 rows per aggregated group.
_SLICES = (("hi", 32, None), ("mid", 16, 0xFFFF), ("lo", 0, 0xFFFF))


def content_aggregates(columns: Sequence[str]) -> list[Column]:
    """`n` (rows) and, for each of two 64-bit row hashes of `columns`' values, its exact sum in
    slices (`content_sums` puts them together). Equal multisets of rows give equal sums
    whatever the order and partitioning; a changed, added or removed row changes them."""
    cols = [F.col(c) for c in columns]
    hashes = {"h1": F.xxhash64(*cols), "h2": F.xxhash64(F.lit("als_assets"), *cols)}
    out = [F.count(F.lit(1)).alias("n")]
    for name, h in hashes.items():
        for part, shift, mask in _SLICES:
            value = F.shiftright(h, shift) if shift else h
            out.append(F.sum(value if mask is None else value.bitwiseAND(mask))
                       .alias(f"{name}_{part}"))
    return out


def content_sums(row) -> tuple[int, Decimal | None, Decimal | None]:
    """(rows, h1, h2) from a row holding `content_aggregates`' columns: each hash's sum over
    the rows as an exact decimal, None when there were no rows."""
    def total(name: str) -> Decimal | None:
        parts = [row[f"{name}_{part}"] for part, _, _ in _SLICES]
        if any(p is None for p in parts):
            return None
        return Decimal(sum(int(p) << shift for p, (_, shift, _) in zip(parts, _SLICES,
                                                                        strict=True)))
    return int(row["n"] or 0), total("h1"), total("h2")
