"""The two sensors that make new ratings re-run what opted in (automation.py has the conditions),
both in the UI's Automation tab, both run by the Dagster daemon (`dagster dev` starts one):

- `ratings_input_sensor` looks at the ratings input (its fingerprint: a `stat` or one SQL
  aggregate) and, when it differs from the last observed data version, launches the
  `observe_ratings_input` job, which records the new version on `ratings_input`;
- `als_automation` evaluates every asset's automation condition and launches what they request.

Both start stopped unless ALS_AUTOMATION is on: `dagster dev` for a look at the UI must not
start fitting models by itself. ALS_AUTOMATION_INTERVAL sets how often they look.
"""

from __future__ import annotations

import warnings

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
    BetaWarning,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from . import settings
from .assets.sources import ratings_fingerprint, ratings_input
from .core.pg import PgConnectionError
from .core.sources import SourceError
from .resources import PostgresResource, RatingsSource
from .versions import DATA_VERSION_TAG

STATUS = (DefaultSensorStatus.RUNNING if settings.env_flag("ALS_AUTOMATION")
          else DefaultSensorStatus.STOPPED)
INTERVAL = settings.env_int("ALS_AUTOMATION_INTERVAL", 60)

observe_ratings_input = define_asset_job(
    "observe_ratings_input", selection=AssetSelection.assets(ratings_input.key),
    description="Observe the ratings input (no Spark, no rows read): a new data version sets "
    "off the sources' automation.")


@sensor(
    name="ratings_input_sensor",
    job=observe_ratings_input,
    minimum_interval_seconds=INTERVAL,
    default_status=STATUS,
    description="Observes ratings_input when its fingerprint differs from the last observed "
    "data version (a changed file, rows added to the table).",
)
def ratings_input_sensor(context: SensorEvaluationContext, source: RatingsSource,
                         postgres: PostgresResource):
    try:
        found = ratings_fingerprint(source, postgres)
    except (SourceError, PgConnectionError, ValueError) as exc:
        return SkipReason(f"cannot look at the ratings input: {exc}")
    latest = context.instance.fetch_observations(
        AssetRecordsFilter(asset_key=AssetKey("ratings_input")), limit=1).records
    observed = (latest[0].asset_observation.tags or {}).get(DATA_VERSION_TAG) if latest else None
    if observed == found.version:
        return SkipReason(f"ratings input unchanged (data version {found.version})")
    # One observation per version: a run key the sensor already used is not launched again.
    return RunRequest(run_key=found.version)


# use_user_code_server is beta: Dagster says so on every load. It is needed, not chosen: the
# per-experiment opt-in is a Python condition (automation.ExperimentOptedIn), which only the
# code server can evaluate; the warning tells the user nothing they could act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    als_automation = AutomationConditionSensorDefinition(
        "als_automation",
        target=AssetSelection.all(),
        use_user_code_server=True,
        default_status=STATUS,
        minimum_interval_seconds=INTERVAL,
        # One run per experiment (its whole chain, one SparkSession), not a backfill.
        emit_backfills=False,
        description="Runs the sources when ratings_input has a new data version, then the "
        "experiments that opt in (automate: true), then the leaderboard and the champion.",
    )
