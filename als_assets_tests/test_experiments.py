"""Experiment configs: the shipped file, and every config error naming experiment and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import als_assets
from als_assets.core.experiments import (
    AlsParams,
    ChampionRule,
    ExperimentConfigError,
    load_experiments,
    parse_experiments,
    parse_experiments_file,
)

SHIPPED = Path(als_assets.__file__).parent / "experiments.yaml"
SOURCE = "bad.yaml"


def doc(body: str) -> str:
    """An `experiments:` document with one experiment `exp1` whose body is `body`."""
    return "experiments:\n  exp1:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")


# ---------------------------------------------------------------------------------------------
# The shipped file


@pytest.fixture(scope="module")
def shipped():
    return load_experiments(SHIPPED)


def test_shipped_file_has_the_expected_experiments(shipped):
    assert {"final_task", "notebook_cv", "implicit_als"} <= set(shipped)
    for name, config in shipped.items():
        assert config.name == name


def test_automate_is_opt_in(shipped):
    """Only the ranking study re-runs by itself on new ratings; the others wait to be asked."""
    assert [name for name, c in shipped.items() if c.automate] == ["implicit_ranking"]
    assert parse_experiments(doc("automate: true"))["exp1"].automate is True
    assert parse_experiments(doc("automate: false"))["exp1"].automate is False
    assert parse_experiments(doc("tuning: {method: holdout}"))["exp1"].automate is False


def test_automate_is_not_part_of_the_config_hash():
    """Turning automation on must not mark earlier evaluations as made under another config."""
    from als_assets.versions import config_hash

    on = parse_experiments(doc("automate: true"))["exp1"]
    off = parse_experiments(doc("automate: false"))["exp1"]
    other = parse_experiments(doc("split: {seed: 7}"))["exp1"]
    assert config_hash(on) == config_hash(off) != config_hash(other)


def test_final_task(shipped):
    c = shipped["final_task"]
    assert c.tuning.method == "tvs"
    assert c.split.ratios == (0.6, 0.2, 0.2)
    assert c.split.seed == 42
    assert c.tuning.grid.rank == (10, 30, 50)
    assert c.tuning.grid.reg_param == (0.05, 0.1, 0.2)
    assert c.tuning.grid.max_iter == (10,)
    assert c.tuning.train_ratio == 0.8
    assert not c.implicit.enabled
    points = c.tuning.grid.points()
    assert len(points) == 9
    assert {(p.rank, p.reg_param) for p in points} == {
        (r, g) for r in (10, 30, 50) for g in (0.05, 0.1, 0.2)}
    assert points[0] == AlsParams(rank=10, max_iter=10, reg_param=0.05, alpha=1.0)


def test_notebook_cv(shipped):
    c = shipped["notebook_cv"]
    assert c.tuning.method == "cv"
    assert c.tuning.num_folds == 3
    assert len(c.tuning.grid.points()) == 18
    assert c.tuning.grid.rank == (10, 20, 50)
    assert c.tuning.grid.max_iter == (10, 15)
    assert c.tuning.grid.reg_param == (0.01, 0.1, 0.3)
    assert c.tuning.sample_fraction == 0.1


def test_implicit_als(shipped):
    c = shipped["implicit_als"]
    assert c.implicit.enabled is True
    assert c.implicit.alpha == 40.0
    assert c.implicit.threshold == 4.0
    assert c.tuning.method == "holdout"
    assert c.tuning.grid.rank == (20,)
    # Without an alpha grid the implicit alpha is the one grid value.
    assert [p.alpha for p in c.tuning.grid.points()] == [40.0]


def test_automate_is_off_unless_set_and_the_ranking_study_sets_it(shipped):
    assert [name for name, c in shipped.items() if c.automate] == ["implicit_ranking"]
    configs = parse_experiments(doc("automate: true") + "\n  other: {}\n")
    assert configs["exp1"].automate is True and configs["other"].automate is False


def test_automate_leaves_the_config_hash_alone():
    from dataclasses import replace

    from als_assets.versions import config_hash

    plain = parse_experiments(doc("tuning: {grid: {rank: 5}}"))["exp1"]
    assert config_hash(replace(plain, automate=True)) == config_hash(plain)
    assert config_hash(replace(plain, cold_start_strategy="nan")) != config_hash(plain)


def test_defaults_are_the_notebooks():
    c = parse_experiments("experiments:\n  plain: {}\n")["plain"]
    assert c.split.ratios == (0.6, 0.2, 0.2) and c.split.seed == 42
    assert c.tuning.method == "holdout"
    assert c.tuning.grid.points() == (AlsParams(10, 10, 0.1, 1.0),)
    assert c.cold_start_strategy == "drop"
    assert (c.ranking.k, c.ranking.relevance_threshold, c.ranking.exclude_seen) == (10, 4.0, True)
    assert (c.similarity.top_n, c.similarity.min_ratings) == (10, 5)
    assert c.sample_user is None


def test_scalar_grid_value_is_a_one_element_list():
    c = parse_experiments(doc("tuning: {grid: {rank: 7, reg_param: 0.5}}"))["exp1"]
    assert c.tuning.grid.rank == (7,)
    assert c.tuning.grid.reg_param == (0.5,)


def test_tuning_metric_defaults_by_kind_and_can_be_a_ranking_metric():
    configs = parse_experiments("""
experiments:
  explicit: {}
  implicit: {implicit: {enabled: true}, tuning: {method: cv}}
  ranked: {tuning: {method: tvs, metric: map_at_k}}
""")
    assert configs["explicit"].metric == "rmse"
    assert configs["implicit"].metric == "ndcg_at_k"  # and cv works for implicit now
    assert configs["ranked"].metric == "map_at_k"
    implicit = configs["implicit"].implicit
    assert (implicit.positives, implicit.confidence) == ("threshold", "binary")


def test_champion_rule_defaults_and_errors():
    assert parse_experiments_file("experiments: {a: {}}\n").champion == ChampionRule(
        "ndcg_at_k", 10, 0.10)
    rule = parse_experiments_file(
        "experiments: {a: {}}\nchampion: {metric: map_at_k, k: 5, min_lift: 0.2}\n").champion
    assert rule == ChampionRule("map_at_k", 5, 0.2)
    for body, words in (("{k: 0}", ["champion.k", ">= 1"]),
                        ("{metric: rmse}", ["champion.metric", "ndcg_at_k, map_at_k"]),
                        ("{margin: 1}", ["champion.margin", "unknown key"]),
                        ("[1]", ["champion rule", "expected a mapping"])):
        with pytest.raises(ExperimentConfigError) as err:
            parse_experiments_file(f"experiments: {{a: {{}}}}\nchampion: {body}\n", SOURCE)
        assert str(err.value).startswith(SOURCE)
        for word in words:
            assert word in str(err.value)


def test_implicit_alpha_grid_is_kept():
    c = parse_experiments(doc("""
        implicit: {enabled: true, alpha: 40}
        tuning: {grid: {alpha: [1, 10]}}
    """))["exp1"]
    assert [p.alpha for p in c.tuning.grid.points()] == [1.0, 10.0]


# ---------------------------------------------------------------------------------------------
# Errors inside one experiment: the message names the experiment and the field.

FIELD_ERRORS = [
    ("unknown top-level key", "colour: blue", ["colour", "unknown key", "automate, "]),
    ("unknown nested key", "tuning: {grid: {rnak: [10]}}", ["tuning.grid.rnak", "unknown key"]),
    ("unknown key in split", "split: {seeds: 1}", ["split.seeds", "unknown key"]),
    ("unknown key in tuning", "tuning: {folds: 3}", ["tuning.folds", "unknown key"]),
    ("name repeated", "name: exp1", ["'name'"]),
    ("rank zero", "tuning: {grid: {rank: [10, 0]}}", ["tuning.grid.rank", "> 0", "[0]"]),
    ("rank negative", "tuning: {grid: {rank: -5}}", ["tuning.grid.rank", "> 0"]),
    ("max_iter zero", "tuning: {grid: {max_iter: [0]}}", ["tuning.grid.max_iter", "> 0"]),
    ("negative reg_param", "tuning: {grid: {reg_param: [0.1, -0.01]}}",
     ["tuning.grid.reg_param", ">= 0", "-0.01"]),
    ("ratios not summing to 1", "split: {ratios: [0.6, 0.3, 0.2]}",
     ["split.ratios", "sum to 1", "1.1"]),
    ("two ratios", "split: {ratios: [0.8, 0.2]}", ["split.ratios", "three ratios"]),
    ("four ratios", "split: {ratios: [0.4, 0.2, 0.2, 0.2]}", ["split.ratios", "three ratios"]),
    ("zero ratio", "split: {ratios: [0.8, 0.2, 0.0]}", ["split.ratios", "> 0"]),
    ("empty rank list", "tuning: {grid: {rank: []}}", ["tuning.grid.rank", "empty"]),
    ("empty reg list", "tuning: {grid: {reg_param: []}}", ["tuning.grid.reg_param", "empty"]),
    ("duplicate grid values", "tuning: {grid: {rank: [10, 10]}}",
     ["tuning.grid.rank", "duplicate"]),
    ("bad tuning method", "tuning: {method: grid_search}",
     ["tuning.method", "grid_search", "holdout, tvs, cv"]),
    ("bad cold start strategy", "cold_start_strategy: fill",
     ["cold_start_strategy", "'fill'", "drop, nan"]),
    ("one fold", "tuning: {method: cv, num_folds: 1}", ["tuning.num_folds", ">= 2"]),
    ("train ratio 1", "tuning: {train_ratio: 1.0}", ["tuning.train_ratio", "(0, 1)"]),
    ("sample fraction 0", "tuning: {sample_fraction: 0}", ["tuning.sample_fraction"]),
    ("parallelism 0", "tuning: {parallelism: 0}", ["tuning.parallelism", ">= 1"]),
    ("implicit tuned on rmse", "implicit: {enabled: true}\ntuning: {metric: rmse}",
     ["tuning.metric", "preferences, not ratings", "ndcg_at_k"]),
    ("unknown tuning metric", "tuning: {metric: auc}",
     ["tuning.metric", "rmse, ndcg_at_k, map_at_k, precision_at_k", "'auc'"]),
    ("unknown positives", "implicit: {enabled: true, positives: some}",
     ["implicit.positives", "threshold, all"]),
    ("unknown confidence", "implicit: {enabled: true, confidence: squared}",
     ["implicit.confidence", "binary, rating, log"]),
    ("alpha grid on explicit", "tuning: {grid: {alpha: [1, 40]}}",
     ["tuning.grid.alpha", "implicit"]),
    ("negative implicit alpha", "implicit: {enabled: true, alpha: -1}", ["implicit.alpha", ">= 0"]),
    ("non-boolean enabled", "implicit: {enabled: 'yes please'}", ["implicit.enabled", "true/false"]),
    ("non-numeric rank", "tuning: {grid: {rank: [ten]}}",
     ["tuning.grid.rank", "expected a number", "'ten'"]),
    ("boolean rank", "tuning: {grid: {rank: [true]}}", ["tuning.grid.rank", "expected a number"]),
    ("fractional rank", "tuning: {grid: {rank: [1.5]}}", ["tuning.grid.rank", "whole number"]),
    ("non-numeric reg", "tuning: {grid: {reg_param: abc}}",
     ["tuning.grid.reg_param", "expected a number"]),
    ("nan reg", "tuning: {grid: {reg_param: [.nan]}}", ["tuning.grid.reg_param", "finite"]),
    ("non-numeric ratio", "split: {ratios: [0.6, 0.2, x]}", ["split.ratios", "expected a number"]),
    ("non-numeric split seed", "split: {seed: abc}", ["split.seed", "expected a number"]),
    ("non-numeric k", "ranking: {k: many}", ["ranking.k", "expected a number"]),
    ("k zero", "ranking: {k: 0}", ["ranking.k", ">= 1"]),
    ("non-numeric threshold", "ranking: {relevance_threshold: high}",
     ["ranking.relevance_threshold", "expected a number"]),
    ("non-boolean exclude_seen", "ranking: {exclude_seen: 1}",
     ["ranking.exclude_seen", "true/false"]),
    ("top_n zero", "similarity: {top_n: 0}", ["similarity.top_n", ">= 1"]),
    ("min_ratings zero", "similarity: {min_ratings: 0}", ["similarity.min_ratings", ">= 1"]),
    ("non-numeric sample_user", "sample_user: alice", ["sample_user", "expected a number"]),
    ("grid not a mapping", "tuning: {grid: [10, 20]}", ["tuning.grid", "expected a mapping"]),
    ("section not a mapping", "split: 0.6", ["split", "expected a mapping"]),
    ("non-boolean automate", "automate: sometimes", ["automate", "true/false"]),
    ("unknown stop_after", "stop_after: evaluation",
     ["stop_after", "'evaluation'", "tuned_params"]),
    ("non-boolean automate", "automate: 'yes'", ["automate", "true/false"]),
    ("numeric automate", "automate: 1", ["automate", "true/false"]),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in FIELD_ERRORS],
                         ids=[i for i, _, _ in FIELD_ERRORS])
def test_field_errors_name_experiment_and_field(body, expected):
    with pytest.raises(ExperimentConfigError) as info:
        parse_experiments(doc(body), SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: experiment 'exp1'")
    for part in expected:
        assert part in message, (part, message)
    # Every field error points at the field by its dotted path.
    assert "field '" in message


def test_error_in_second_experiment_names_that_experiment():
    text = "experiments:\n  good: {}\n  second_one:\n    tuning: {grid: {rank: [0]}}\n"
    with pytest.raises(ExperimentConfigError, match="experiment 'second_one', field "
                                                    "'tuning.grid.rank'"):
        parse_experiments(text, SOURCE)


def test_implicit_with_empty_grid_is_not_a_type_error():
    text = doc("implicit: {enabled: true}\ntuning:\n  grid:\n")
    try:
        configs = parse_experiments(text, SOURCE)
    except ExperimentConfigError:
        return  # an ExperimentConfigError naming the field would be fine too
    assert configs["exp1"].tuning.grid.alpha == (40.0,)


# ---------------------------------------------------------------------------------------------
# File-level errors: the message names the file and what is wrong.

FILE_ERRORS = [
    ("duplicate experiment name", "experiments:\n  twice: {}\n  other: {}\n  twice: {}\n",
     ["not valid YAML", "duplicate key 'twice'", "line 4"]),
    ("duplicate nested key", doc("tuning: {method: cv}\ntuning: {method: tvs}"),
     ["not valid YAML", "duplicate key 'tuning'"]),
    ("invalid YAML", "experiments:\n  a: [1, 2\n", ["not valid YAML"]),
    ("tab-indented YAML", "experiments:\n\ta: {}\n", ["not valid YAML"]),
    ("bad experiment name", "experiments:\n  'final task': {}\n",
     ["experiment name 'final task'", "letters, digits"]),
    ("non-string experiment name", "experiments:\n  42: {}\n", ["experiment name 42"]),
    ("no experiments key", "experimnets:\n  a: {}\n", ["top-level 'experiments:'"]),
    ("extra top-level key", "experiments:\n  a: {}\ndefaults: {}\n",
     ["unknown top-level keys", "defaults"]),
    ("empty experiments", "experiments: {}\n", ["non-empty mapping"]),
    ("empty document", "", ["top-level 'experiments:'"]),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in FILE_ERRORS],
                         ids=[i for i, _, _ in FILE_ERRORS])
def test_file_errors(text, expected):
    with pytest.raises(ExperimentConfigError) as info:
        parse_experiments(text, SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: ")
    for part in expected:
        assert part in message, (part, message)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope" / "experiments.yaml"
    with pytest.raises(ExperimentConfigError) as info:
        load_experiments(missing)
    assert str(info.value) == (
        f"cannot read experiments file {missing}: No such file or directory")


def test_load_names_the_file_in_errors(tmp_path):
    path = tmp_path / "exps.yaml"
    path.write_text(doc("tuning: {grid: {reg_param: [-1]}}"), encoding="utf-8")
    with pytest.raises(ExperimentConfigError) as info:
        load_experiments(path)
    assert str(info.value).startswith(f"{path}: experiment 'exp1', field 'tuning.grid.reg_param'")
