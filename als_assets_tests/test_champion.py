"""Choosing the served experiment on constructed leaderboards: by validation only, with the
eligibility margin over most-popular, ties and ineligible experiments."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from als_assets.core.champion import choose_champion
from als_assets.core.experiments import ChampionRule
from als_assets.core.reports import leaderboard_frame

RULE = ChampionRule(metric="ndcg_at_k", k=10, min_lift=0.10)


def row(name, val, pop=0.10, test=0.0, k=10):
    return {"experiment": name, "k": k, "validation_ndcg_at_k": val,
            "validation_most_popular_ndcg_at_k": pop, "ndcg_at_k": test}


def board(*rows):
    return pd.DataFrame(list(rows))


def test_best_validation_wins_even_when_another_is_better_on_test():
    choice = choose_champion(board(row("a", 0.20, test=0.10), row("b", 0.18, test=0.30)), RULE)
    assert choice.experiment == "a" and choice.runner_up == "b"
    assert choice.score == 0.20 and choice.popular_score == 0.10
    assert choice.lift == pytest.approx(1.0)
    assert choice.verdict("a") == "champion" and choice.verdict("b") == "eligible"
    assert "runner-up b at 0.1800" in choice.reason


def test_below_the_margin_is_not_eligible():
    # 0.109 is 9% above most-popular's 0.10: under the 10% margin; 0.11 is exactly 10%.
    choice = choose_champion(board(row("close", 0.109), row("enough", 0.11)), RULE)
    assert choice.experiment == "enough" and choice.runner_up is None
    assert choice.verdict("close").startswith("not eligible: validation ndcg_at_k 0.1090 is +9.0%")


def test_no_eligible_experiment():
    choice = choose_champion(board(row("explicit", 0.01), row("also", 0.05)), RULE)
    assert choice.experiment is None and math.isnan(choice.score)
    assert choice.reason.startswith("no experiment is eligible")
    assert choose_champion(board(), RULE).reason == "no experiment has been evaluated yet"


def test_a_tie_goes_to_the_first_name_and_says_so():
    choice = choose_champion(board(row("zeta", 0.2), row("alpha", 0.2)), RULE)
    assert choice.experiment == "alpha" and choice.runner_up == "zeta"
    assert "a tie, broken by name" in choice.reason


def test_another_k_or_a_missing_score_is_not_eligible():
    choice = choose_champion(board(row("k5", 0.9, k=5), row("old", float("nan")),
                                   row("ok", 0.2)), RULE)
    assert choice.experiment == "ok"
    assert choice.verdict("k5") == "not eligible: K=5, the rule compares at K=10"
    assert "no validation ndcg_at_k" in choice.verdict("old")


def test_the_margin_and_metric_come_from_the_rule():
    rows = board({"experiment": "a", "k": 10, "validation_map_at_k": 0.3,
                  "validation_most_popular_map_at_k": 0.2})
    assert choose_champion(rows, ChampionRule(metric="map_at_k", min_lift=0.5)).experiment == "a"
    assert choose_champion(rows, ChampionRule(metric="map_at_k", min_lift=0.6)).experiment is None


def test_leaderboard_orders_by_validation_and_marks_the_champion():
    frame = leaderboard_frame([row("test_star", 0.15, test=0.5), row("val_star", 0.3, test=0.1),
                               row("loser", 0.05, test=0.2)], RULE)
    assert list(frame["experiment"]) == ["val_star", "test_star", "loser"]
    assert list(frame["position"]) == [1, 2, 3]
    assert list(frame["serving"]) == ["champion", "eligible",
                                      "not eligible: validation ndcg_at_k 0.0500 is -50.0% vs "
                                      "most-popular's 0.1000, the rule asks for +10%"]
    assert list(frame["validation_lift"]) == pytest.approx([2.0, 0.5, -0.5])
    empty = leaderboard_frame([], RULE)
    assert empty.empty and "serving" in empty.columns


def materialize_champion(frame: pd.DataFrame, tmp_path):
    """The real `champion` asset behind a leaderboard that returns `frame`."""
    from dagster import DagsterInstance, asset, materialize

    from als_assets.assets.champion import champion

    @asset(name="experiment_leaderboard")
    def leaderboard():
        return frame

    instance = DagsterInstance.ephemeral()
    result = materialize([leaderboard, champion], instance=instance, raise_on_error=False,
                         resources={"io_manager": _fs_io_manager(tmp_path)})
    return result, instance


def _fs_io_manager(tmp_path):
    from dagster import FilesystemIOManager

    return FilesystemIOManager(base_dir=str(tmp_path))


def test_no_eligible_experiment_fails_the_blocking_check_and_writes_nothing(tmp_path):
    from dagster import AssetKey

    # A validation score of 0 is a lift of -100%: no rule (min_lift > -1) admits it.
    result, instance = materialize_champion(board(row("explicit", 0.0)), tmp_path)
    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.description.startswith("no experiment is eligible")
    assert "explicit: not eligible" in evaluation.metadata["verdicts"].value
    assert instance.get_latest_materialization_event(AssetKey("champion")) is None


def test_an_eligible_experiment_is_materialized_with_its_reasons(tmp_path):
    from dagster import AssetKey

    frame = board(row("a", 0.2, test=0.15), row("b", 0.18))
    frame["most_popular_ndcg_at_k"] = [0.1, 0.1]
    result, instance = materialize_champion(frame, tmp_path)
    assert result.success
    assert result.output_for_node("champion").experiment == "a"
    meta = instance.get_latest_materialization_event(
        AssetKey("champion")).asset_materialization.metadata
    assert meta["experiment"].value == "a" and meta["runner_up"].value == "b"
    assert meta["validation_lift"].value == pytest.approx(1.0)
    assert "| ndcg_at_k | 0.1500 | 0.1000 |" in meta["summary"].value
