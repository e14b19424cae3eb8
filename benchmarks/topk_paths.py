"""The two top-K paths side by side: the driver's (collect, rank in the driver process) and the
executors' (mapInPandas over user batches), for the lists and their judgement, at the user and
movie counts of the synthetic source's sizes. The basis of `core/distributed.py`'s switch rule.

usage (from the repo root):
    python benchmarks/topk_paths.py [--sizes 1000000,10000000] [--repeat 1]
        [--out benchmarks/results/topk_paths.json]

For each size and path a fresh Python process (one SparkSession, local[cores]) builds random
rank-10 factors for the synthetic source's users and movies, `size` seen (user, movie) pairs
and size/4 held-out ratings, then times `recommend` + writing the lists (Spark's noop sink) and
the judgement of the lists against the held-out ratings. The path is forced with
`spark.als.topk.path`. Peak RSS of the Python driver process (ru_maxrss) shows what the driver
holds; the JVM is the same on both paths.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, VENV_PY, machine_info, write_json  # noqa: E402


def child(size: int, path: str) -> dict:
    import numpy as np
    import pandas as pd

    from als_assets.core.distributed import PATH_CONF, judge_on_executors, recommend
    from als_assets.core.ranking import Catalogue, HeldOut, judge
    from als_assets.core.sources import SyntheticSpec
    from als_assets.core.spark import SparkSettings, build_spark_session
    from als_assets.core.topk import TopK

    spec = SyntheticSpec(n_ratings=size)
    rng = np.random.default_rng(1)
    spark = build_spark_session(SparkSettings(master=f"local[{os.cpu_count()}]",
                                              driver_memory="8g", checkpoint_dir="/tmp/topk_ckpt"))
    spark.conf.set(PATH_CONF, path)

    def factors(n: int, name: str):
        pdf = pd.DataFrame({name: np.arange(n, dtype=np.int32),
                            "features": list(rng.standard_normal((n, 10)).astype(np.float32))})
        return spark.createDataFrame(pdf, f"{name} int, features array<float>")

    users, items = factors(spec.n_users, "id"), factors(spec.n_movies, "id")
    pairs = pd.DataFrame({"user_id": rng.integers(0, spec.n_users, size, dtype=np.int32),
                          "movie_id": rng.integers(0, spec.n_movies, size, dtype=np.int32)})
    seen = spark.createDataFrame(pairs.drop_duplicates()).persist()
    held = pd.DataFrame({"user_id": rng.integers(0, spec.n_users, size // 4, dtype=np.int32),
                         "movie_id": rng.integers(0, spec.n_movies, size // 4, dtype=np.int32),
                         "rating": rng.choice([1.0, 3.0, 4.0, 5.0], size // 4)})
    held = spark.createDataFrame(held.drop_duplicates(["user_id", "movie_id"])).persist()
    counts = pairs.groupby("movie_id").size()
    catalogue = Catalogue(counts.index.to_numpy(np.int64), counts.to_numpy(np.int64))
    del pairs
    n_seen, n_held = seen.count(), held.count()
    users.persist().count()
    items.persist().count()

    start = time.perf_counter()
    lists = recommend(users, items, 10, seen).persist()
    lists.write.format("noop").mode("overwrite").save()
    recommend_s = time.perf_counter() - start
    start = time.perf_counter()
    if path == "executors":
        scores = judge_on_executors(lists, seen, held, catalogue, 10, 4.0)
    else:
        judged = HeldOut.collect(seen, held, 10, 4.0, exclude_seen=True)
        scores = judge(TopK.from_spark(lists), judged, catalogue)
    judge_s = time.perf_counter() - start
    spark.stop()
    return {"size": size, "path": path, "users": spec.n_users, "movies": spec.n_movies,
            "scores": spec.n_users * spec.n_movies, "seen_pairs": n_seen, "held": n_held,
            "recommend_s": round(recommend_s, 2), "judge_s": round(judge_s, 2),
            "driver_python_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "model_ndcg": scores[0].relevant.ndcg_at_k}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "topk_paths.json"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for rep in range(args.repeat):
            for path in (("driver", "executors") if rep % 2 == 0 else ("executors", "driver")):
                load = os.getloadavg()[0]
                out = subprocess.run([VENV_PY, __file__, "--child", str(size), path], cwd=REPO,
                                     capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["load_before"] = round(load, 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    write_json(Path(args.out), {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
