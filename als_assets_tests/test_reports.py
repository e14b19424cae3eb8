"""The sample user the report shows (core/reports.py): the configured one if they have a list,
else the most active test user with a list, ties to the lower id."""

from __future__ import annotations

import pytest

from als_assets.core import reports
from als_assets.core.reports import pick_sample_user

TEST_SCHEMA = "user_id int, movie_id int, rating float, timestamp long"
RECS_SCHEMA = "user_id int, movie_id int, score float, rank int"
# Test ratings per user: 1 -> 3, 2 -> 4, 3 -> 4, 4 -> 1.
TEST_ROWS = ([(1, m, 4.0, 0) for m in (10, 11, 12)] + [(2, m, 3.0, 0) for m in (10, 11, 12, 13)]
             + [(3, m, 5.0, 0) for m in (20, 21, 22, 23)] + [(4, 10, 1.0, 0)])


@pytest.fixture
def test_split(spark):
    return spark.createDataFrame(TEST_ROWS, TEST_SCHEMA)


def lists_for(spark, users):
    return spark.createDataFrame([(u, 99, 1.0, 1) for u in users], RECS_SCHEMA)


@pytest.mark.parametrize("candidates", [20, 1])  # 1: the leader has no list, the join decides
@pytest.mark.parametrize(("listed", "expected"), [
    ((1, 2, 3, 4), 2),  # 2 and 3 lead with 4 ratings each: the lower id
    ((1, 3, 4), 3),     # the leader has no list
    ((1, 4), 1),
    ((4,), 4),
])
def test_the_most_active_test_user_with_a_list(spark, test_split, monkeypatch, candidates,
                                               listed, expected):
    monkeypatch.setattr(reports, "SAMPLE_CANDIDATES", candidates)
    assert pick_sample_user(lists_for(spark, listed), test_split, None) == expected


def test_the_configured_user_when_they_have_a_list(spark, test_split):
    assert pick_sample_user(lists_for(spark, (1, 4)), test_split, 4) == 4
    assert pick_sample_user(lists_for(spark, (1, 4)), test_split, 2) == 1


@pytest.mark.parametrize("candidates", [20, 1])
def test_no_test_user_with_a_list_is_an_error(spark, test_split, monkeypatch, candidates):
    monkeypatch.setattr(reports, "SAMPLE_CANDIDATES", candidates)
    with pytest.raises(ValueError, match="no test user has recommendations"):
        pick_sample_user(lists_for(spark, (7,)), test_split, None)
