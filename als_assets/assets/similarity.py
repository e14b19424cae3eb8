"""Item-item similarity from the latent movie factors."""


from dagster import AssetExecutionContext, MetadataValue, Output, asset
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..core.topk import rank_similar_items
from ..partitions import experiment_config, experiment_partitions
from ..versions import OWNERS, config_data_version, experiment_tags

SIMILARITY_CODE_VERSION = "item_similarity-1"

# Toy Story, The Matrix, The Shawshank Redemption: the notebook's examples.
WELL_KNOWN_MOVIES = (1, 2571, 318)


def neighbours_markdown(similarity: DataFrame, movies: DataFrame, movie_ids: list[int]) -> str:
    """A markdown section per movie listing its neighbours with titles."""
    titles = dict(
        movies.filter(F.col("movie_id").isin(movie_ids)).select("movie_id", "title").collect())
    rows = (
        similarity.filter(F.col("movie_id").isin(movie_ids))
        .join(movies.select(F.col("movie_id").alias("similar_movie_id"),
                            F.col("title").alias("similar_title")), "similar_movie_id", "left")
        .orderBy("movie_id", "rank")
        .collect()
    )
    out = []
    for movie_id in movie_ids:
        mine = [r for r in rows if r["movie_id"] == movie_id]
        if not mine:
            continue
        out.append(f"**{titles.get(movie_id, movie_id)}** (movie {movie_id})\n")
        out.append("| # | movie | similarity |\n|---:|---|---:|")
        out += [f"| {r['rank']} | {r['similar_title'] or r['similar_movie_id']} | "
                f"{r['similarity']:.3f} |" for r in mine]
        out.append("")
    return "\n".join(out)


def showcase_movies(similarity: DataFrame, training: DataFrame) -> list[int]:
    """The notebook's movies where present, else the three most-rated movies with neighbours."""
    present = [r[0] for r in similarity.filter(F.col("movie_id").isin(list(WELL_KNOWN_MOVIES)))
               .select("movie_id").distinct().collect()]
    if present:
        return [m for m in WELL_KNOWN_MOVIES if m in present]
    top = (training.join(similarity.select("movie_id").distinct(), "movie_id")
           .groupBy("movie_id").count().orderBy(F.desc("count"), "movie_id").limit(3).collect())
    return [r["movie_id"] for r in top]


@asset(
    group_name="similarity",
    partitions_def=experiment_partitions,
    tags=experiment_tags(model="als"),
    owners=OWNERS,
    kinds={"spark", "parquet"},
    code_version=SIMILARITY_CODE_VERSION,
    description="Top-N cosine neighbours of every movie with enough ratings "
    "(movie_id, similar_movie_id, similarity, rank).",
)
def item_similarity(context: AssetExecutionContext, item_factors, training, movies):
    config = experiment_config(context).similarity
    eligible = (training.groupBy("movie_id").count()
                .filter(F.col("count") >= config.min_ratings).select("movie_id"))
    table = rank_similar_items(item_factors, eligible, config.top_n).persist()
    n_items = table.select("movie_id").distinct().count()
    shown = showcase_movies(table, training)
    version = config_data_version(context, SIMILARITY_CODE_VERSION,
                                  ["item_factors", "training", "movies"], {"similarity": config})
    return Output(table, data_version=version, metadata={
        "rows": table.count(),
        "items_with_neighbours": n_items,
        "eligible_items": eligible.count(),
        "top_n": config.top_n,
        "min_ratings": config.min_ratings,
        "neighbours": MetadataValue.md(neighbours_markdown(table, movies, shown)),
    })
