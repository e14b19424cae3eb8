"""The champion: which experiment's recommendations are served, chosen on validation."""

import math

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    MetadataValue,
    Output,
    asset,
)

from ..automation import CHAMPION_CONDITION
from ..checks import gate
from ..core.champion import ChampionChoice, choose_champion, validation_column
from ..partitions import CHAMPION_RULE
from ..versions import OWNERS, stable_hash
from .reports import partition_link

CHAMPION_CODE_VERSION = "champion-1"
CHAMPION_ELIGIBLE = AssetCheckSpec(
    "champion_eligible", asset="champion", blocking=True,
    description="Some experiment beats most-popular on validation by the rule's margin; "
    "otherwise nothing is chosen and the recommendations served so far stay.")


def _link(name: str | None) -> str:
    if not name:
        return "none"
    return (f"[{name}]({partition_link('evaluation', name)}) "
            f"([model]({partition_link('als_model', name)}))")


def champion_markdown(choice: ChampionChoice, board) -> str:
    """Why this experiment: the rule, the winner and the runner-up, and the champion's test
    metrics beside most-popular's (reported, never used to choose)."""
    lines = [f"**Champion:** {_link(choice.experiment)}", "",
             f"**Why:** {choice.reason}", "",
             f"**Runner-up:** {_link(choice.runner_up)}"]
    if choice.experiment is not None:
        row = board.loc[board["experiment"] == choice.experiment].iloc[0]
        k = CHAMPION_RULE.k
        lines += ["", f"| on test, K={k} | champion | most-popular | random |",
                  "|---|---:|---:|---:|"]
        for metric in ("ndcg_at_k", "precision_at_k", "ndcg_at_k_all_relevant"):
            values = [row.get(metric), row.get(f"most_popular_{metric}"),
                      row.get(f"random_{metric}")]
            cells = " | ".join("n/a" if v is None or v != v else f"{float(v):.4f}"
                               for v in values)
            lines.append(f"| {metric} | {cells} |")
    return "\n".join(lines)


@asset(
    group_name="serving",
    tags={"scope": "serving"},
    owners=OWNERS,
    kinds={"pandas"},
    code_version=CHAMPION_CODE_VERSION,
    check_specs=[CHAMPION_ELIGIBLE],
    automation_condition=CHAMPION_CONDITION,
    description="The experiment whose recommendations are served: the best validation ranking "
    "score among those that beat most-popular by the rule's margin (experiments.yaml "
    "`champion:`). Never chosen by test metrics.",
)
def champion(context: AssetExecutionContext, experiment_leaderboard):
    choice = choose_champion(experiment_leaderboard, CHAMPION_RULE)
    yield from gate([AssetCheckResult(
        check_name=CHAMPION_ELIGIBLE.name, passed=choice.experiment is not None,
        description=choice.reason,
        metadata={"verdicts": MetadataValue.md("\n".join(
            f"- {name}: {verdict}" for name, verdict in choice.verdicts) or "no candidates")},
    )])
    metric = CHAMPION_RULE.metric
    column = validation_column(metric)
    # Publishing downstream is stale only when the choice (or its score) changed.
    version = DataVersion(stable_hash({"experiment": choice.experiment,
                                       "score": round(choice.score, 6)}))
    yield Output(choice, data_version=version, metadata={
        "experiment": choice.experiment,
        "reason": choice.reason,
        "runner_up": choice.runner_up or "none",
        f"{column}": choice.score,
        f"{validation_column(metric, 'most_popular')}": choice.popular_score,
        "validation_lift": choice.lift,
        "runner_up_score": choice.runner_up_score if not math.isnan(choice.runner_up_score)
        else None,
        "rule": f"best validation {metric} at K={CHAMPION_RULE.k}, at least "
                f"{CHAMPION_RULE.min_lift:+.0%} vs most-popular",
        "evaluation_page": MetadataValue.url(partition_link("evaluation", choice.experiment)),
        "summary": MetadataValue.md(champion_markdown(choice, experiment_leaderboard)),
    })

