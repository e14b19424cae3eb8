"""Where ratings and movies come from: a synthetic MovieLens-shaped default, or a MovieLens folder.

Every loader returns DataFrames with the same schema, so the rest of the graph does not care
which one ran: ratings(user_id int, movie_id int, rating float, timestamp long) and
movies(movie_id int, title string, genres string).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

# INT32_MAX is re-exported: callers read the limits where the schema is.
from .rating_rules import INT32_MAX, RATING_MAX, RATING_MIN  # noqa: F401

RATINGS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.IntegerType(), True),
        T.StructField("movie_id", T.IntegerType(), True),
        T.StructField("rating", T.FloatType(), True),
        T.StructField("timestamp", T.LongType(), True),
    ]
)
MOVIES_SCHEMA = T.StructType(
    [
        T.StructField("movie_id", T.IntegerType(), True),
        T.StructField("title", T.StringType(), True),
        T.StructField("genres", T.StringType(), True),
    ]
)

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)


class SourceError(ValueError):
    """The source data is missing or malformed; the message names the file and what is wrong."""


# ---------------------------------------------------------------------------------------------
# Synthetic


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and seed of the synthetic data; users and movies scale with the ratings."""

    n_ratings: int = 100_000
    seed: int = 42
    true_rank: int = 8
    noise: float = 0.5

    @property
    def n_users(self) -> int:
        return max(20, round(self.n_ratings / 150))

    @property
    def n_movies(self) -> int:
        return max(50, round(10 * self.n_ratings**0.5))


def _row_dots(left: np.ndarray, left_rows: np.ndarray, right: np.ndarray,
              right_rows: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """<left[left_rows[i]], right[right_rows[i]]> for every i, a few million rows at a time: the
    gathered (rows x rank) operands of one einsum would take 2 x 8 x rank bytes per draw (13 GB
    at 20M ratings)."""
    out = np.empty(left_rows.size, dtype=np.float64)
    for start in range(0, left_rows.size, chunk):
        stop = start + chunk
        out[start:stop] = np.einsum("ij,ij->i", left[left_rows[start:stop]],
                                    right[right_rows[start:stop]])
    return out


@functools.lru_cache(maxsize=2)
def generate_synthetic(spec: SyntheticSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic MovieLens-shaped ratings and movies.

    rating = clip(3.2 + b_u + b_i + 0.8 * <u, v> + noise) to half stars in [0.5, 5], where u, v
    are unit-variance latent tastes of rank `true_rank`: a low-rank signal ALS can recover, plus
    noise it cannot. Movie popularity is Zipf-like and user activity log-normal (at least 20
    ratings a user, as in MovieLens), so a few movies have most ratings and many have one.
    """
    if spec.n_ratings < 100:
        raise SourceError(f"synthetic source: n_ratings must be >= 100, got {spec.n_ratings}")
    rng = np.random.default_rng(spec.seed)
    n_users, n_movies, r = spec.n_users, spec.n_movies, spec.true_rank

    user_vec = rng.standard_normal((n_users, r)) / np.sqrt(r)
    movie_vec = rng.standard_normal((n_movies, r)) / np.sqrt(r)
    user_bias = rng.normal(0.0, 0.4, n_users)
    movie_bias = rng.normal(0.0, 0.5, n_movies)

    popularity = 1.0 / (np.arange(n_movies) + 10.0) ** 0.9
    popularity /= popularity.sum()
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity /= activity.sum()

    # Who rates what: a user draws movies by popularity and keeps those matching their taste,
    # with probability sigmoid(6 * affinity); exposure carries taste, as in real logs, so
    # implicit ALS has something to learn beyond popularity. About 40 candidate draws per user
    # come first (most users keep >= 20, as in MovieLens), the rest follow user activity.
    users = np.repeat(np.arange(n_users), 40)
    batch = max(0, int(spec.n_ratings * 4.0) - users.size) + 1000
    users = np.concatenate([users, rng.choice(n_users, batch, p=activity)])
    movies = np.empty(0, dtype=np.int64)
    for _ in range(50):
        movies = np.concatenate([movies, rng.choice(n_movies, users.size - movies.size,
                                                    p=popularity)])
        affinity = _row_dots(user_vec, users, movie_vec, movies) * np.sqrt(r)
        kept = rng.random(users.size) < 1.0 / (1.0 + np.exp(-6.0 * affinity))
        keys = users[kept].astype(np.int64) * n_movies + movies[kept]
        _, first = np.unique(keys, return_index=True)
        if first.size >= spec.n_ratings:
            break
        # Small catalogues repeat pairs often: draw more until there are enough distinct ones.
        users = np.concatenate([users, rng.choice(n_users, batch, p=activity)])
    else:
        raise SourceError(f"synthetic source: could not draw {spec.n_ratings} distinct pairs")
    # The first n distinct pairs in draw order: the per-user draws first, then by activity.
    idx = np.flatnonzero(kept)[np.sort(first)[: spec.n_ratings]]
    users, movies, affinity = users[idx], movies[idx], affinity[idx]

    signal = 0.8 * affinity
    noise = rng.normal(0, spec.noise, idx.size)
    raw = 3.2 + user_bias[users] + movie_bias[movies] + signal + noise
    rating = np.clip(np.round(raw * 2) / 2, RATING_MIN, RATING_MAX).astype(np.float32)
    timestamp = rng.integers(828_000_000, 1_540_000_000, idx.size, dtype=np.int64)
    order = np.lexsort((movies, users))
    ratings = pd.DataFrame(
        {
            "user_id": (users[order] + 1).astype(np.int32),
            "movie_id": (movies[order] + 1).astype(np.int32),
            "rating": rating[order],
            "timestamp": timestamp[order],
        }
    )

    # Genres follow the strongest latent dimensions, so neighbours in factor space share genres.
    years = rng.integers(1930, 2019, n_movies)
    top = np.argsort(-movie_vec, axis=1)[:, :2]
    genre_names = [
        "|".join(sorted({GENRES[top[i, 0] % len(GENRES)], GENRES[top[i, 1] % len(GENRES)]}))
        for i in range(n_movies)
    ]
    movies_df = pd.DataFrame(
        {
            "movie_id": np.arange(1, n_movies + 1, dtype=np.int32),
            "title": [f"Synthetic Movie {i + 1} ({years[i]})" for i in range(n_movies)],
            "genres": genre_names,
        }
    )
    return ratings, movies_df


def write_movielens_folder(folder: str | Path, n_ratings: int, seed: int = 42) -> Path:
    """Write synthetic data in MovieLens's CSV layout (ratings.csv, movies.csv), e.g. to load
    into PostgreSQL where no real MovieLens folder is at hand."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings, movies = generate_synthetic(SyntheticSpec(n_ratings=n_ratings, seed=seed))
    ratings.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_csv(
        folder / "ratings.csv", index=False, float_format="%.1f")
    movies.rename(columns={"movie_id": "movieId"}).to_csv(folder / "movies.csv", index=False)
    return folder


# Rows per partition of a large synthetic frame, at most. Past a size, Spark turns a pandas frame
# into one partition per Arrow batch of 10,000 rows: 2,000 partitions at 20M ratings, each a
# task in every pass over the ratings and a file in every write of them and of their splits.
SYNTHETIC_ROWS_PER_PARTITION = 2_500_000


def synthetic_ratings(spark: SparkSession, spec: SyntheticSpec) -> DataFrame:
    """The synthetic ratings in at least as many partitions as Spark's default parallelism, and
    at most `SYNTHETIC_ROWS_PER_PARTITION` rows each. `coalesce` merges neighbouring partitions
    without a shuffle and never adds any, so small frames keep the partitions Spark gave them
    (and their splits keep their rows)."""
    frame = spark.createDataFrame(generate_synthetic(spec)[0], schema=RATINGS_SCHEMA)
    wanted = max(spark.sparkContext.defaultParallelism,
                 -(-spec.n_ratings // SYNTHETIC_ROWS_PER_PARTITION))
    return frame.coalesce(wanted)


def synthetic_movies(spark: SparkSession, spec: SyntheticSpec) -> DataFrame:
    return spark.createDataFrame(generate_synthetic(spec)[1], schema=MOVIES_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MovieLens CSV folder

MOVIELENS_HEADERS = {
    "ratings.csv": "userId,movieId,rating,timestamp",
    "movies.csv": "movieId,title,genres",
}


def _check_movielens_file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise SourceError(
            f"MovieLens folder {folder}: {name} not found (expected the ml-latest-small / "
            "ml-20m / ml-25m layout with ratings.csv and movies.csv)"
        )
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().lstrip("\ufeff")
    if header != MOVIELENS_HEADERS[name]:
        raise SourceError(
            f"{path}, line 1: header is {header!r}, expected {MOVIELENS_HEADERS[name]!r}"
        )
    return path


def _movielens_folder(folder: str | Path) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SourceError(f"MovieLens folder {folder} does not exist (set ALS_MOVIELENS_DIR)")
    return folder


def movielens_ratings(spark: SparkSession, folder: str | Path) -> DataFrame:
    """Read ratings.csv with an explicit schema; malformed rows are an error.

    Malformed rows are kept aside (columnNameOfCorruptRecord) and reported with the row text,
    instead of Spark's FAILFAST stack trace or PERMISSIVE's silent nulls.
    """
    ratings_path = _check_movielens_file(_movielens_folder(folder), "ratings.csv")

    corrupt = "_corrupt_record"
    raw_schema = T.StructType(
        [
            T.StructField("user_id", T.LongType(), True),
            T.StructField("movie_id", T.LongType(), True),
            T.StructField("rating", T.DoubleType(), True),
            T.StructField("timestamp", T.LongType(), True),
            T.StructField(corrupt, T.StringType(), True),
        ]
    )
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", corrupt)
        .schema(raw_schema)
        .csv(str(ratings_path))
    )
    # Spark fills the corrupt-record column only in a cached parse (and refuses queries on it
    # otherwise); the cache also serves the validation and the write that follow.
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    bad = raw.filter(F.col(corrupt).isNotNull()).select(corrupt).limit(3).collect()
    if bad:
        examples = "; ".join(repr(row[0]) for row in bad)
        raise SourceError(f"{ratings_path}: rows that are not userId,movieId,rating,timestamp: "
                          f"{examples}")
    return raw.select(
        # try_cast: an id beyond int32 becomes null here and is reported by validation
        # (Spark 4's ANSI cast would abort the read instead).
        F.col("user_id").try_cast("int").alias("user_id"),
        F.col("movie_id").try_cast("int").alias("movie_id"),
        F.col("rating").cast("float").alias("rating"),
        F.col("timestamp"),
        # Keep the raw values to tell an int32 overflow from a real null in validation, and
        # to show (and find the line of) a rejected row as the file has it.
        F.col("user_id").alias("_raw_user_id"),
        F.col("movie_id").alias("_raw_movie_id"),
        F.col("rating").alias("_raw_rating"),
    )


def movielens_movies(spark: SparkSession, folder: str | Path) -> DataFrame:
    """Read movies.csv (quoted titles with commas); malformed rows are an error, as for ratings."""
    movies_path = _check_movielens_file(_movielens_folder(folder), "movies.csv")
    corrupt = "_corrupt_record"
    raw = (
        spark.read.option("header", True)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", corrupt)
        .schema(T.StructType([*MOVIES_SCHEMA.fields, T.StructField(corrupt, T.StringType())]))
        .csv(str(movies_path))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    bad = raw.filter(F.col(corrupt).isNotNull() | F.col("movie_id").isNull()) \
        .select(corrupt).limit(3).collect()
    if bad:
        examples = "; ".join(repr(row[0]) for row in bad)
        raise SourceError(f"{movies_path}: rows that are not movieId,title,genres: {examples}")
    return raw.drop(corrupt)


# ---------------------------------------------------------------------------------------------
# Validation: see ratings_check.py (Spark) and rating_rules.py (the rules, shared with the loader)


def clean_columns(ratings: DataFrame) -> list[Column]:
    """The canonical schema's columns of `ratings`, cast (the raw-id helper columns left out)."""
    return [F.col(f.name).cast(f.dataType).alias(f.name) for f in RATINGS_SCHEMA.fields]


def clean_ratings(ratings: DataFrame) -> DataFrame:
    """Project to the canonical schema (drops the raw-id helper columns)."""
    return ratings.select(*clean_columns(ratings))
