"""Which experiment's recommendations to serve: the champion, chosen from the leaderboard.

The choice uses validation scores only. The test split is looked at once per experiment, to
report how the chosen model does; choosing by it would make that report optimistic (the best of
several noisy test scores is biased upward) and leak the test set into the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .experiments import ChampionRule

CHAMPION, ELIGIBLE = "champion", "eligible"


def validation_column(metric: str, baseline: str | None = None) -> str:
    """The leaderboard (and als_model metadata) column of a validation ranking metric."""
    return f"validation_{baseline}_{metric}" if baseline else f"validation_{metric}"


@dataclass(frozen=True)
class ChampionChoice:
    """The experiment to serve (None when no experiment is eligible), why, the runner-up, and
    every candidate's verdict."""

    rule: ChampionRule
    experiment: str | None
    score: float
    popular_score: float
    reason: str
    runner_up: str | None
    runner_up_score: float
    verdicts: tuple[tuple[str, str], ...]

    @property
    def lift(self) -> float:
        return lift(self.score, self.popular_score)

    def verdict(self, experiment: str) -> str:
        return dict(self.verdicts).get(experiment, "not a candidate")


def lift(score: float, baseline: float) -> float:
    """Relative improvement over the baseline: 0.10 is 10% better."""
    if baseline > 0:
        return score / baseline - 1.0
    return math.inf if score > 0 else math.nan


def _number(value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def judge_candidate(row: pd.Series, rule: ChampionRule) -> tuple[bool, str]:
    """Whether one leaderboard row may be served under the rule, and if not, why."""
    metric = rule.metric
    k = row.get("k")
    if k is None or _number(k) != rule.k:
        return False, f"not eligible: K={k}, the rule compares at K={rule.k}"
    score = _number(row.get(validation_column(metric)))
    popular = _number(row.get(validation_column(metric, "most_popular")))
    if math.isnan(score) or math.isnan(popular):
        return False, (f"not eligible: no validation {metric} beside most-popular's "
                       "(materialize its als_model again)")
    gain = lift(score, popular)
    # A hair of tolerance: 0.11 against 0.10 is a lift of 10%, not 9.999...%.
    if not gain >= rule.min_lift - 1e-9:
        return False, (f"not eligible: validation {metric} {score:.4f} is {gain:+.1%} vs "
                       f"most-popular's {popular:.4f}, the rule asks for "
                       f"{rule.min_lift:+.0%}")
    return True, ELIGIBLE


def choose_champion(board: pd.DataFrame, rule: ChampionRule) -> ChampionChoice:
    """The eligible experiment with the best validation score under the rule's metric; on a tie
    the experiment whose name sorts first (a stable, explainable choice). Test metrics play no
    part."""
    column = validation_column(rule.metric)
    verdicts: dict[str, str] = {}
    eligible: list[tuple[float, str, float]] = []
    for _, row in board.iterrows():
        ok, verdict = judge_candidate(row, rule)
        verdicts[row["experiment"]] = verdict
        if ok:
            eligible.append((_number(row[column]), row["experiment"],
                             _number(row[validation_column(rule.metric, "most_popular")])))
    eligible.sort(key=lambda e: (-e[0], e[1]))
    if not eligible:
        reason = (f"no experiment is eligible: none beats most-popular's validation "
                  f"{rule.metric} at K={rule.k} by {rule.min_lift:+.0%}"
                  if len(board) else "no experiment has been evaluated yet")
        return ChampionChoice(rule, None, math.nan, math.nan, reason, None, math.nan,
                              tuple(verdicts.items()))
    score, name, popular = eligible[0]
    verdicts[name] = CHAMPION
    runner = eligible[1] if len(eligible) > 1 else None
    reason = (f"best validation {rule.metric} at K={rule.k} among {len(eligible)} eligible "
              f"experiment(s): {score:.4f}, {lift(score, popular):+.1%} vs most-popular's "
              f"{popular:.4f} (the rule asks for {rule.min_lift:+.0%})")
    if runner is not None:
        reason += f"; runner-up {runner[1]} at {runner[0]:.4f}"
        if runner[0] == score:
            reason += " (a tie, broken by name)"
    return ChampionChoice(rule, name, score, popular, reason,
                          runner[1] if runner else None, runner[0] if runner else math.nan,
                          tuple(verdicts.items()))
