"""Item-item similarity from the latent movie factors."""


import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..core.distributed import similar
from ..core.ranking import Catalogue
from ..partitions import experiment_config
from ..versions import config_data_version
from .experiment_asset import experiment_asset

SIMILARITY_CODE_VERSION = "item_similarity-1"

# Toy Story, The Matrix, The Shawshank Redemption: the notebook's examples.
WELL_KNOWN_MOVIES = (1, 2571, 318)


def neighbours_markdown(table: pd.DataFrame, movies: DataFrame, movie_ids: list[int]) -> str:
    """A markdown section per movie listing its neighbours with titles."""
    shown = table[table["movie_id"].isin(movie_ids)].sort_values(["movie_id", "rank"])
    wanted = sorted({*movie_ids, *shown["similar_movie_id"].tolist()})
    titles = dict(movies.filter(F.col("movie_id").isin(wanted)).select("movie_id", "title")
                  .collect())
    out = []
    for movie_id in movie_ids:
        mine = shown[shown["movie_id"] == movie_id]
        if mine.empty:
            continue
        out.append(f"**{titles.get(movie_id, movie_id)}** (movie {movie_id})\n")
        out.append("| # | movie | similarity |\n|---:|---|---:|")
        out += [f"| {r.rank} | {titles.get(r.similar_movie_id) or r.similar_movie_id} | "
                f"{r.similarity:.3f} |" for r in mine.itertuples()]
        out.append("")
    return "\n".join(out)


def showcase_movies(table: pd.DataFrame, rating_counts: pd.DataFrame) -> list[int]:
    """The notebook's movies where present, else the three most-rated movies with neighbours
    (`rating_counts`: movie_id, count of training ratings)."""
    present = set(table["movie_id"].tolist())
    if present & set(WELL_KNOWN_MOVIES):
        return [m for m in WELL_KNOWN_MOVIES if m in present]
    top = (rating_counts[rating_counts["movie_id"].isin(present)]
           .sort_values(["count", "movie_id"], ascending=[False, True]).head(3))
    return [int(m) for m in top["movie_id"]]


def rating_counts(training: DataFrame) -> pd.DataFrame:
    """Training ratings per movie (movie_id, count), on the driver: one row per movie; the
    catalogue the model's judgement and the evaluation count too (counted once)."""
    catalogue = Catalogue.of(training)
    return pd.DataFrame({"movie_id": catalogue.item_ids, "count": catalogue.counts})


@experiment_asset(
    group="similarity",
    kinds=("spark", "parquet"),
    code_version=SIMILARITY_CODE_VERSION,
    description="Top-N cosine neighbours of every movie with enough ratings "
    "(movie_id, similar_movie_id, similarity, rank).",
)
def item_similarity(context: AssetExecutionContext, item_factors, training, movies):
    config = experiment_config(context).similarity
    counts = rating_counts(training)
    eligible = counts.loc[counts["count"] >= config.min_ratings, "movie_id"].to_numpy()
    found = similar(item_factors, eligible, config.top_n)
    table = found.frame.persist()
    if found.local is not None:  # ranked on the driver: shown from its rows, no Spark job
        rows = len(found.local)
        present = found.local[["movie_id"]].drop_duplicates()
        shown = showcase_movies(present, counts)
        neighbours = found.local[found.local["movie_id"].isin(shown)]
    else:
        rows = table.count()
        present = table.select("movie_id").distinct().toPandas()
        shown = showcase_movies(present, counts)
        neighbours = table.filter(F.col("movie_id").isin(shown)).toPandas()
    version = config_data_version(context, SIMILARITY_CODE_VERSION,
                                  ["item_factors", "training", "movies"], {"similarity": config})
    return Output(table, data_version=version, metadata={
        "rows": rows,
        "items_with_neighbours": len(present),
        "eligible_items": len(eligible),
        "top_n": config.top_n,
        "min_ratings": config.min_ratings,
        "neighbours": MetadataValue.md(neighbours_markdown(neighbours, movies, shown)),
    })
