"""The content hash's sums, taken in 64-bit slices, against the plain sum of Spark's own row
hashes (as Python integers, so nothing can overflow or round)."""

from __future__ import annotations

from decimal import Decimal

from pyspark.sql import functions as F

from als_assets.core.content_hash import content_aggregates, content_sums


def _reference(frame, columns):
    """(rows, h1, h2) summed in Python from Spark's xxhash64 of each row."""
    cols = [F.col(c) for c in columns]
    rows = frame.select(F.xxhash64(*cols).alias("a"),
                        F.xxhash64(F.lit("als_assets"), *cols).alias("b")).collect()
    if not rows:
        return 0, None, None
    return len(rows), Decimal(sum(r["a"] for r in rows)), Decimal(sum(r["b"] for r in rows))


def test_sliced_sums_equal_the_exact_sum_of_row_hashes(spark):
    rows = [(u, m, float(r) / 2, 1_000_000_000 + u * m) for u in range(1, 40)
            for m in range(1, 25) for r in [(u * m) % 10 + 1]]
    frame = spark.createDataFrame(rows, "user_id int, movie_id int, rating double, ts long")
    columns = frame.columns
    got = content_sums(frame.agg(*content_aggregates(columns)).first())
    want = _reference(frame, columns)
    assert got == want
    # Both signs occur among the row hashes: the signed top slice is exercised.
    signs = {r[0] < 0 for r in frame.select(F.xxhash64(*columns)).collect()}
    assert signs == {True, False}
    # Grouped, as the splits hash their three parts in one aggregation.
    labelled = frame.withColumn("_part", (F.col("user_id") % 3).cast("int"))
    for r in labelled.groupBy("_part").agg(*content_aggregates(columns)).collect():
        assert content_sums(r) == _reference(labelled.filter(F.col("_part") == r["_part"]),
                                             columns)


def test_no_rows_have_no_sums(spark):
    frame = spark.createDataFrame([], "user_id int, movie_id int")
    assert content_sums(frame.agg(*content_aggregates(frame.columns)).first()) == (0, None, None)
