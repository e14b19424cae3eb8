"""The project as the tests configure it: small synthetic data, `local[2]`, a throwaway storage
root, given to the resources explicitly (and, for child processes that load the code location
themselves, as the environment variables the README documents)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from als_assets.definitions import build_defs, build_resources
from als_assets.resources import RatingsSource, SparkResource

HERE = os.path.dirname(os.path.abspath(__file__))
EXPERIMENTS_FILE = os.path.join(HERE, "e2e_experiments.yaml")
STORAGE_ROOT = tempfile.mkdtemp(prefix="als_assets_tests_")
atexit.register(shutil.rmtree, STORAGE_ROOT, True)
SYNTHETIC_RATINGS = 20_000


def project_resources(root: str = STORAGE_ROOT, **source_fields) -> dict:
    """The resources of the tests' runs: 20k synthetic ratings unless `source_fields` say
    otherwise, Spark on two cores, stored under `root`."""
    spark = SparkResource(master="local[2]", driver_memory="2g", storage_root=root)
    source = RatingsSource(**{"kind": "synthetic", "synthetic_ratings": SYNTHETIC_RATINGS,
                              **source_fields})
    return build_resources(spark=spark, source=source)


RESOURCES = project_resources()
DEFS = build_defs(RESOURCES)

# The same settings for a child process that loads `als_assets.definitions` itself.
CHILD_ENV = {
    "ALS_EXPERIMENTS_FILE": EXPERIMENTS_FILE,
    "ALS_SOURCE": "synthetic",
    "ALS_SYNTHETIC_RATINGS": str(SYNTHETIC_RATINGS),
    "ALS_STORAGE_ROOT": STORAGE_ROOT,
    "SPARK_MASTER": "local[2]",
    "SPARK_DRIVER_MEMORY": "2g",
}
