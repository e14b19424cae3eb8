"""What the Dagster UI shows, read through its GraphQL API (in process, no webserver): lineage,
each partition's latest materialization metadata (params, numeric metrics, plots, model path),
and staleness when the ratings change.

The slow tests share one instance with the sources and two experiments (e2e_holdout,
e2e_implicit) materialized into their own storage root, so re-materializing `ratings` with other
data here does not touch the storage the other end-to-end tests read. The fast tests at the end
check the pieces: content versions, config hashes and the leaderboard's links.
"""

from __future__ import annotations

import base64

import pytest
from dagster import AssetKey, AssetSelection, instance_for_test, materialize
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from als_assets.assets.reports import leaderboard_markdown, partition_link
from als_assets.core.experiments import ChampionRule, SplitConfig
from als_assets.core.plots import is_png
from als_assets.core.reports import leaderboard_frame
from als_assets.definitions import all_assets
from als_assets.io_managers import VersionedSparkIOManager
from als_assets.resources import RatingsSource
from als_assets.versions import config_hash, content_data_version, content_data_versions
from als_assets_tests.project import RESOURCES as resources

EXPERIMENTS = ("e2e_holdout", "e2e_implicit")
CHAIN = AssetSelection.tag("scope", "experiment")
SOURCES = AssetSelection.assets("ratings", "movies")

LINEAGE = """
query Lineage($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      groupName kinds opVersion isPartitioned
      owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
      tags { key value }
      dependencyKeys { path }
      dependedByKeys { path }
    }
  }
}
"""

LATEST = """
query Latest($path: [String!]!, $partition: String!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      dataVersion(partition: $partition)
      assetMaterializations(partitions: [$partition], limit: 1) {
        partition
        runId
        tags { key value }
        metadataEntries {
          label
          __typename
          ... on FloatMetadataEntry { floatValue }
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on BoolMetadataEntry { boolValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}
"""

STALE = """
query Stale($path: [String!]!, $partition: String) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      staleStatus(partition: $partition)
      staleCauses(partition: $partition) { key { path } reason category dependency { path } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """An instance with the sources and two experiments materialized, and a GraphQL context
    over it that loads the code location in process."""
    root = str(tmp_path_factory.mktemp("graphql_storage"))
    res = {**resources, "io_manager": VersionedSparkIOManager(root=root, spark=resources["spark"])}
    with instance_for_test() as instance:
        assert materialize(all_assets, resources=res, instance=instance,
                           selection=SOURCES).success
        for name in EXPERIMENTS:
            assert materialize(all_assets, resources=res, instance=instance,
                               selection=CHAIN, partition_key=name).success, name
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="als_assets.definitions"), location_name="als_assets")
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
            yield {"instance": instance, "process": process, "resources": res}


def gql(world, query: str, **variables) -> dict:
    context = world["process"].create_request_context()
    result = execute_dagster_graphql(context, query, variables)
    assert not result.errors, result.errors
    return result.data["assetNodeOrError"]


def latest(world, asset: str, partition: str) -> tuple[dict, dict, dict]:
    node = gql(world, LATEST, path=[asset], partition=partition)
    events = node["assetMaterializations"]
    assert events, f"{asset} [{partition}] has no materialization"
    event = events[0]
    assert event["partition"] == partition
    entries = {e["label"]: e for e in event["metadataEntries"]}
    tags = {t["key"]: t["value"] for t in event["tags"]}
    return node, entries, tags


def number(entry: dict) -> float:
    assert entry["__typename"] in ("FloatMetadataEntry", "IntMetadataEntry"), entry
    return entry.get("floatValue", entry.get("intValue"))


def embedded_png(md: str) -> bytes:
    assert md.startswith("![") and "(data:image/png;base64," in md
    data = md.split("(data:image/png;base64,", 1)[1].split(")", 1)[0]
    return base64.b64decode(data)


def stale(world, asset: str, partition: str | None) -> tuple[str, list[dict]]:
    node = gql(world, STALE, path=[asset], partition=partition)
    return node["staleStatus"], node["staleCauses"]


@pytest.mark.slow
def test_lineage_of_the_model(world):
    node = gql(world, LINEAGE, path=["als_model"])
    assert {tuple(k["path"]) for k in node["dependencyKeys"]} == {
        ("training",), ("validation",), ("tuned_params",), ("ratings",)}
    # The leaderboard reads each model's validation scores (what the champion is chosen by).
    assert {tuple(k["path"]) for k in node["dependedByKeys"]} == {
        ("user_factors",), ("item_factors",), ("evaluation",), ("cold_start_report",),
        ("experiment_leaderboard",)}
    assert node["groupName"] == "models" and node["isPartitioned"]
    assert node["kinds"] == ["spark"]
    assert node["opVersion"] == "als_model-2"
    assert {"team": "recsys"} in node["owners"]
    assert {"key": "model", "value": "als"} in node["tags"]
    assert {"key": "scope", "value": "experiment"} in node["tags"]

    # What is served: experiments -> leaderboard -> champion -> als.recommendations, which
    # also depends on the experiments' recommendations it copies.
    served = gql(world, LINEAGE, path=["pg_champion_recommendations"])
    assert {tuple(k["path"]) for k in served["dependencyKeys"]} == {
        ("champion",), ("user_recommendations",)}
    champion = gql(world, LINEAGE, path=["champion"])
    assert {tuple(k["path"]) for k in champion["dependencyKeys"]} == {
        ("experiment_leaderboard",)}
    assert champion["groupName"] == "serving" and not champion["isPartitioned"]

    ratings = gql(world, LINEAGE, path=["ratings"])
    assert {("training",), ("validation",), ("test",), ("als_model",)} <= {
        tuple(k["path"]) for k in ratings["dependedByKeys"]}
    # The only upstream of the ratings is the observed input (automation.py), not an asset
    # that is materialized.
    assert ratings["dependencyKeys"] == [{"path": ["ratings_input"]}]


@pytest.mark.slow
def test_model_materialization_shows_params_metrics_versions_and_plots(world):
    for name in EXPERIMENTS:
        node, meta, tags = latest(world, "als_model", name)
        assert meta["experiment"]["text"] == name
        for key in ("rank", "max_iter", "reg_param", "alpha", "fit_seconds", "training_rows"):
            assert number(meta[key]) > 0, (name, key)
        metric = "ndcg_at_10" if name == "e2e_implicit" else "rmse"
        assert number(meta[f"validation_{metric}"]) > 0
        assert number(meta[f"baseline_validation_{metric}"]) > 0
        assert meta["storage_path"]["text"].endswith("/model")
        assert f"/als_model/{name}/" in meta["storage_path"]["text"]
        assert tags["dagster/code_version"] == "als_model-2"
        assert tags["dagster/data_version"] == node["dataVersion"]
        assert tags["dagster/input_data_version/ratings"]
        for plot in ("tuning_heatmap", "validation_vs_baseline", "training_ratings"):
            png = embedded_png(meta[plot]["mdStr"])
            assert is_png(png) and len(png) < 60_000, (name, plot, len(png))
        assert "regParam" in meta["tuning_heatmap"]["mdStr"]


@pytest.mark.slow
def test_evaluation_reports_every_metric_as_a_number(world):
    _, explicit, _ = latest(world, "evaluation", "e2e_holdout")
    for metric in ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                   "baseline_rmse_global_mean", "most_popular_precision_at_k",
                   "most_popular_ndcg_at_k", "random_ndcg_at_k", "ndcg_at_k_all_relevant",
                   "coverage", "popularity_bias", "popular_overlap"):
        assert explicit[metric]["__typename"] == "FloatMetadataEntry", metric
    assert number(explicit["rmse"]) < number(explicit["baseline_rmse_global_mean"])
    assert is_png(embedded_png(explicit["metrics_vs_baselines"]["mdStr"]))

    _, implicit, _ = latest(world, "evaluation", "e2e_implicit")
    assert "rmse" not in implicit and "baseline_rmse_global_mean" not in implicit
    assert implicit["ndcg_at_k"]["__typename"] == "FloatMetadataEntry"
    assert is_png(embedded_png(implicit["metrics_vs_baselines"]["mdStr"]))

    _, tuned, _ = latest(world, "tuned_params", "e2e_holdout")
    assert number(tuned["grid_points"]) == 4
    assert is_png(embedded_png(tuned["heatmap"]["mdStr"]))


@pytest.mark.slow
def test_every_per_experiment_partition_is_fresh_after_its_run(world):
    for name in EXPERIMENTS:
        for asset in ("training", "tuned_params", "als_model", "evaluation"):
            status, causes = stale(world, asset, name)
            assert status == "FRESH", (asset, name, causes)


@pytest.mark.slow
def test_unchanged_data_keeps_the_versions_and_the_models_fresh(world):
    """Re-reading the same ratings and re-splitting with the same config gives the same data
    versions, so nothing downstream goes stale."""
    instance, res = world["instance"], world["resources"]
    before = {a: gql(world, LATEST, path=[a], partition="e2e_holdout")["dataVersion"]
              for a in ("training", "validation", "test")}
    assert materialize(all_assets, resources=res, instance=instance, selection=SOURCES).success
    assert materialize(all_assets, resources=res, instance=instance,
                       selection=AssetSelection.assets("training", "validation", "test"),
                       partition_key="e2e_holdout").success
    after = {a: gql(world, LATEST, path=[a], partition="e2e_holdout")["dataVersion"]
             for a in before}
    assert after == before
    for asset in ("tuned_params", "als_model", "evaluation"):
        status, causes = stale(world, asset, "e2e_holdout")
        assert status == "FRESH", (asset, causes)


@pytest.mark.slow
def test_new_ratings_mark_every_model_stale(world):
    instance, res = world["instance"], world["resources"]
    for name in EXPERIMENTS:
        assert stale(world, "als_model", name)[0] == "FRESH"
    other = {**res, "source": RatingsSource(kind="synthetic", synthetic_ratings=20_000,
                                            synthetic_seed=7)}
    assert materialize(all_assets, resources=other, instance=instance,
                       selection=["ratings", "movies"]).success

    for name in EXPERIMENTS:
        status, causes = stale(world, "als_model", name)
        assert status == "STALE", name
        # The UI lists root causes: the ratings' new data version.
        assert {"key": {"path": ["ratings"]}, "reason": "has a new data version",
                "category": "DATA", "dependency": None} in causes, causes
        assert stale(world, "training", name)[0] == "STALE"

    # The same answer from the resolver the UI's GraphQL layer uses.
    context = world["process"].create_request_context()
    resolver = CachingStaleStatusResolver(instance, context.asset_graph, context)
    assert resolver.get_status(AssetKey("als_model"), "e2e_holdout") == StaleStatus.STALE
    direct = resolver.get_stale_causes(AssetKey("als_model"), "e2e_holdout")
    assert [(c.reason, c.dependency.asset_key) for c in direct] == [
        ("has a new dependency data version", AssetKey("ratings"))]
    assert resolver.get_status(AssetKey("ratings")) == StaleStatus.FRESH


# ---------------------------------------------------------------------------------------------
# The pieces, without a Dagster instance


def test_content_version_ignores_row_order_and_partitioning(spark):
    rows = [(u, m, float(r), 1000 + u) for u, m, r in
            [(1, 1, 4.0), (1, 2, 3.5), (2, 1, 5.0), (3, 7, 1.0), (4, 2, 2.5)]]
    schema = "user_id int, movie_id int, rating float, timestamp long"
    frame = spark.createDataFrame(rows, schema)
    version = content_data_version(frame)
    assert content_data_version(spark.createDataFrame(rows[::-1], schema).repartition(3)) == \
        version
    changed = rows[:-1] + [(4, 2, 3.0, 1004)]
    assert content_data_version(spark.createDataFrame(changed, schema)) != version
    assert content_data_version(spark.createDataFrame(rows[:-1], schema)) != version
    assert content_data_version(spark.createDataFrame(rows + rows[:1], schema)) != version
    assert len(version.value) == 16


def test_content_versions_of_several_frames_equal_one_at_a_time(spark):
    schema = "user_id int, movie_id int, rating float, timestamp long"
    rows = [(u, m, float(r), 1000 + u) for u, m, r in
            [(1, 1, 4.0), (1, 2, 3.5), (2, 1, 5.0), (3, 7, 1.0), (4, 2, 2.5)]]
    frames = {"a": spark.createDataFrame(rows[:2], schema),
              "b": spark.createDataFrame(rows[2:], schema).repartition(2),
              "empty": spark.createDataFrame([], schema),
              "same_as_a": spark.createDataFrame(rows[1::-1], schema)}
    versions = content_data_versions(frames)
    assert versions == {name: content_data_version(f) for name, f in frames.items()}
    assert versions["a"] == versions["same_as_a"] != versions["b"] != versions["empty"]


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(SplitConfig()) == config_hash(SplitConfig())
    assert config_hash(SplitConfig(seed=1)) != config_hash(SplitConfig(seed=2))
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})


def test_leaderboard_links_each_experiment_to_its_partition_page():
    frame = leaderboard_frame([
        {"experiment": "a b", "run_id": "0123456789abcdef", "k": 10,
         "validation_ndcg_at_k": 0.1, "validation_most_popular_ndcg_at_k": 0.1},
        {"experiment": "best", "run_id": "fedcba9876543210", "k": 10,
         "validation_ndcg_at_k": 0.2, "validation_most_popular_ndcg_at_k": 0.1},
    ], ChampionRule())
    md = leaderboard_markdown(frame)
    assert md.index("[best](/assets/evaluation?view=partitions&partition=best)") < \
        md.index("[a b](/assets/evaluation?view=partitions&partition=a%20b)")
    assert "[01234567](/runs/0123456789abcdef)" in md
    assert partition_link("als_model", "x") == "/assets/als_model?view=partitions&partition=x"
    assert list(frame["experiment"]) == ["best", "a b"]  # the frame keeps plain names
    assert "**★ champion**" in md.splitlines()[2]  # the first row, best on validation
    assert leaderboard_markdown(leaderboard_frame([], ChampionRule())) == \
        "No experiment has been evaluated yet."
