"""The Dagster UI in a real browser: `dagster dev` on loopback, driven by Debian's headless
Chromium through Playwright.

What a person would do: open the asset graph and find every asset; materialize the sources;
open als_model and pick the e2e_holdout partition; launch the experiment's chain for that
partition from the graph (a second experiment, e2e_tvs, is launched through GraphQL at the same
time, and both must succeed with their own outputs); then open the run and the model's
materialization and find the metrics and the plots. Screenshots of every stage go to
test-artifacts/ui/. Waits are on GraphQL state, not fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
EXPERIMENTS_FILE = REPO / "als_assets_tests" / "e2e_experiments.yaml"
PARTITION, OTHER_PARTITION = "e2e_holdout", "e2e_tvs"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync",
                  # Only loopback: Chromium bypasses a proxy for loopback addresses, and sends
                  # everything else to a port where nothing listens.
                  "--proxy-server=http://127.0.0.1:9"]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
RUN_TIMEOUT = 600  # seconds; two experiments share 2 cores
# Set ALS_UI_SLOW_MO=500 to watch a headed run locally (with a display).
SLOW_MO = int(os.environ.get("ALS_UI_SLOW_MO", "0") or 0)

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the skip below says why
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing: apt-get install -y chromium "
                              "chromium-driver"),
    pytest.mark.skipif(sync_playwright is None,
                       reason="the Python `playwright` package is missing: pip install playwright"),
]


# ---------------------------------------------------------------------------------------------
# dagster dev on loopback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check: Callable[[], object], timeout: float, every: float = 1.0,
             alive: Callable[[], None] | None = None,
             sleep: Callable[[float], None] = time.sleep):
    """Poll `check` until it returns something truthy; fail naming `what` on timeout.

    With a browser open, pass `sleep=browser_sleep(page)`: Playwright's sync API serves the
    page's events only inside its own calls, so a plain time.sleep would freeze the UI."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if alive:
            alive()
        try:
            value = check()
        except (OSError, urllib.error.URLError, KeyError, TypeError) as exc:
            value, last_error = None, exc
        if value:
            return value
        sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


@dataclass
class Dagster:
    url: str
    process: subprocess.Popen
    log: Path
    storage_root: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"dagster dev exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")

    def graphql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.url + "/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]


def stop_process_group(process: subprocess.Popen) -> None:
    """Ctrl-C to the whole group (webserver, daemon, code servers, run workers and their Spark
    JVMs all share it), then SIGKILL to whatever is left: everything here is temporary."""
    pgid = process.pid  # start_new_session: the group is the dagster dev process's id
    for sig, grace in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.5)
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return


@pytest.fixture(scope="module")
def dagster(tmp_path_factory) -> Iterator[Dagster]:
    """`dagster dev` (webserver, daemon, code server) on 127.0.0.1 with a free port, a
    temporary DAGSTER_HOME and storage root, 20k synthetic ratings and local[2] Spark."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("dagster_dev")
    home, storage = work / "home", work / "storage"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {**os.environ,
           "DAGSTER_HOME": str(home),
           "ALS_EXPERIMENTS_FILE": str(EXPERIMENTS_FILE),
           "ALS_SOURCE": "synthetic",
           "ALS_SYNTHETIC_RATINGS": "20000",
           "ALS_STORAGE_ROOT": str(storage),
           "SPARK_MASTER": "local[2]",
           "SPARK_DRIVER_MEMORY": "2g",
           "SPARK_LOCAL_IP": "127.0.0.1",
           "PYTHONUNBUFFERED": "1"}
    dagster_bin = Path(sys.executable).with_name("dagster")
    command = [str(dagster_bin) if dagster_bin.exists() else "dagster", "dev",
               "-m", "als_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]
    log = work / "dagster_dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = Dagster(f"http://127.0.0.1:{port}", process, log, storage)
    try:
        wait_for("the webserver", lambda: urllib.request.urlopen(
            server.url + "/server_info", timeout=5).status == 200, 180, alive=server.alive)
        wait_for("the code location to load", lambda: location_name(server), 180,
                 every=2, alive=server.alive)
        # The community sign-up dialog shows on loopback hosts until it was seen once.
        server.graphql("mutation { setNuxSeen }")
        yield server
    finally:
        stop_process_group(process)
        shutil.copy(log, ARTIFACTS / "dagster_dev.log")


def location_name(server: Dagster) -> str | None:
    data = server.graphql("""{ workspaceOrError { ... on Workspace { locationEntries {
        name locationOrLoadError { __typename } } } } }""")
    for entry in data["workspaceOrError"]["locationEntries"]:
        if entry["locationOrLoadError"] and \
                entry["locationOrLoadError"]["__typename"] == "RepositoryLocation":
            return entry["name"]
    return None


RUNS = """{ runsOrError { ... on Runs { results {
    runId status startTime endTime tags { key value } assetSelection { path } } } } }"""


def runs(server: Dagster) -> list[dict]:
    return server.graphql(RUNS)["runsOrError"]["results"]


def partition_of(run: dict) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), None)


def browser_sleep(page: Page) -> Callable[[float], None]:
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def new_run(server: Dagster, known: set[str], match: Callable[[dict], bool],
            sleep: Callable[[float], None]) -> dict:
    return wait_for("the launched run to appear", lambda: next(
        (r for r in runs(server) if r["runId"] not in known and match(r)), None), 60,
        alive=server.alive, sleep=sleep)


def wait_for_success(server: Dagster, run_id: str, sleep: Callable[[float], None],
                     timeout: float = RUN_TIMEOUT) -> dict:
    def finished():
        run = next(r for r in runs(server) if r["runId"] == run_id)
        if run["status"] in ("FAILURE", "CANCELED"):
            raise AssertionError(f"run {run_id} ended {run['status']}:\n{server.log_tail()}")
        return run if run["status"] == "SUCCESS" else None
    return wait_for(f"run {run_id} to succeed", finished, timeout, every=3, alive=server.alive,
                    sleep=sleep)


LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""


def launch(server: Dagster, assets: list[str], partition: str | None = None) -> str:
    """What the UI's Materialize button sends, for runs the test launches itself."""
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    params = {
        "selector": {"repositoryLocationName": location_name(server),
                     "repositoryName": "__repository__", "pipelineName": "__ASSET_JOB",
                     "assetSelection": [{"path": [a]} for a in assets]},
        "executionMetadata": {"tags": tags},
        "mode": "default",
    }
    result = server.graphql(LAUNCH, executionParams=params)["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


LATEST = """
query Latest($path: [String!]!, $partition: String!) {
  assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
    assetMaterializations(partitions: [$partition], limit: 1) {
      runId metadataEntries { label ... on PathMetadataEntry { path }
                              ... on TextMetadataEntry { text }
                              ... on FloatMetadataEntry { floatValue } } } } } }"""


def engine_messages(server: Dagster, run_id: str) -> list[str]:
    data = server.graphql("""query Logs($runId: ID!) { logsForRun(runId: $runId, limit: 5000) {
        ... on EventConnection { events { __typename ... on EngineEvent { message } } } } }""",
                          runId=run_id)
    return [e["message"] for e in data["logsForRun"]["events"]
            if e["__typename"] == "EngineEvent"]


def latest_metadata(server: Dagster, asset: str, partition: str) -> tuple[str, dict]:
    node = server.graphql(LATEST, path=[asset], partition=partition)["assetNodeOrError"]
    [event] = node["assetMaterializations"]
    return event["runId"], {e["label"]: e.get("path") or e.get("text") or e.get("floatValue")
                            for e in event["metadataEntries"]}


# ---------------------------------------------------------------------------------------------
# The browser


@pytest.fixture(scope="module")
def page(dagster, tmp_path_factory) -> Iterator[Page]:
    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000}, slow_mo=SLOW_MO)
        # Record what the page asked of other hosts (the proxy flag makes it fail).
        outside: list[str] = []

        def note(request):
            host = urllib.parse.urlsplit(request.url).hostname or ""
            if not request.url.startswith(("data:", "blob:")) and host not in LOOPBACK:
                outside.append(request.url)

        context.on("request", note)
        context.set_default_timeout(30_000)
        try:
            tab = context.pages[0] if context.pages else context.new_page()
            yield tab
        finally:
            context.close()
            (ARTIFACTS / "non_loopback_requests.txt").write_text("".join(
                url + "\n" for url in outside))


@pytest.fixture(autouse=True)
def last_screen(request, page) -> Iterator[None]:
    """Whatever the browser showed when a test ended (passed or not): the first thing to look
    at when a step times out."""
    yield
    with contextlib.suppress(Exception):
        shot(page, f"zz_end_of_{request.node.name}")


def shot(page: Page, name: str, full_page: bool = False) -> Path:
    path = ARTIFACTS / f"{name}.png"
    # animations="disabled" finishes fades first, so dialogs are caught fully drawn.
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


def open_page(page: Page, server: Dagster, path: str) -> None:
    page.goto(server.url + path, wait_until="domcontentloaded")
    # The sign-up dialog is off (setNuxSeen); close it anyway should a version show it.
    skip = page.get_by_role("button", name="Skip")
    with contextlib.suppress(Exception):
        skip.click(timeout=1500)


def show_plot(page: Page, label: str, alt: str, screenshot: str) -> None:
    """Open a markdown metadata entry ([Show Markdown]) and check its PNG was decoded."""
    row = page.locator("tr", has=page.get_by_text(label, exact=True)).first
    row.scroll_into_view_if_needed()
    row.get_by_text("[Show Markdown]").click()
    image = page.locator(f"[role=dialog] img[alt='{alt}']").first
    image.wait_for()
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    wait_for(f"the {alt} image to decode", lambda: image.evaluate(
        "img => img.complete && img.naturalWidth > 0"), 15, sleep=browser_sleep(page))
    shot(page, screenshot)
    page.get_by_role("button", name="Close").click()
    image.wait_for(state="detached")


def graph_url(selection: str) -> str:
    return "/asset-groups~" + urllib.parse.quote(selection, safe="") + "/"


def expected_assets() -> list[str]:
    from als_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    return sorted(k.to_user_string() for k in graph.get_all_asset_keys())


# ---------------------------------------------------------------------------------------------
# The tests


def test_asset_graph_shows_every_asset(dagster, page):
    names = expected_assets()
    nap = browser_sleep(page)
    assert {"ratings", "movies", "training", "validation", "test", "tuned_params", "als_model",
            "user_factors", "item_factors", "item_similarity", "user_recommendations",
            "evaluation", "cold_start_report", "sample_user_report",
            "experiment_leaderboard"} <= set(names)

    page.set_viewport_size({"width": 1600, "height": 1300})  # the whole tree, unvirtualized
    open_page(page, dagster, "/asset-groups")
    # Collapsed, the graph is the pipeline: one box per stage (asset group).
    for group in ("sources", "splits", "tuning", "models", "factors", "similarity",
                  "recommendations", "evaluation", "reports"):
        page.locator(f'[title="{group}"]').first.wait_for()
    shot(page, "01_asset_graph_stages")

    # The sidebar tree lists every asset under its group once the groups are open (from the
    # last group up, so the rows above do not move).
    carets = page.locator("[class*=AssetSidebarNode_itemContainer] > button")
    wait_for("the group tree", lambda: carets.count() >= 9, 30, sleep=nap)
    for i in reversed(range(carets.count())):
        carets.nth(i).click()
    for name in names:
        page.locator(f'[class*=AssetSidebarNode] [title="{name}"]').first.wait_for()

    # And the graph draws a node for each one when its groups are expanded.
    page.locator("[aria-label=settings]").last.click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.get_by_text("Global asset lineage").first.click()  # closes the settings menu
    nodes = page.locator("[class*=AssetNode_assetName]")
    for _ in range(4):  # zoom out until every node is inside the viewport
        if nodes.count() >= len(names):
            break
        page.locator("[aria-label=zoom_out]").click()
        page.wait_for_timeout(500)
    wait_for(f"{len(names)} asset nodes", lambda: nodes.count() >= len(names), 15,
             sleep=nap)
    shot(page, "02_asset_graph_every_asset")
    page.set_viewport_size({"width": 1600, "height": 1000})


def test_materialize_an_experiment_from_the_ui_and_judge_the_model(dagster, page):
    nap = browser_sleep(page)
    # 1. The sources, from their group in the graph.
    open_page(page, dagster, graph_url("group:sources"))
    known = {r["runId"] for r in runs(dagster)}
    page.get_by_role("button", name="Materialize all").click()
    sources_run = new_run(dagster, known, lambda r: {tuple(a["path"]) for a in
                                                      r["assetSelection"] or []}
                          == {("ratings",), ("movies",)}, nap)
    shot(page, "03_sources_launched")
    wait_for_success(dagster, sources_run["runId"], nap)

    # 2. The model's page: pick the experiment's partition.
    open_page(page, dagster, "/assets/als_model?view=partitions")
    page.get_by_text(PARTITION, exact=True).first.click()
    wait_for("the partition in the URL", lambda: f"partition={PARTITION}" in page.url, 15,
             sleep=nap)
    shot(page, "04_als_model_partition_picked")

    # 3. The experiment's chain (every `scope=experiment` asset) for that partition.
    open_page(page, dagster, graph_url("tag:scope=experiment"))
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.locator("[role=dialog]").last
    dialog.get_by_text("Launch runs to materialize 12 assets").wait_for()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_text(PARTITION, exact=True).filter(visible=True).first.click()
    page.keyboard.press("Escape")  # closes the partition list, not the dialog
    with contextlib.suppress(Exception):
        page.get_by_placeholder("Filter partitions").wait_for(state="hidden", timeout=5000)
    launch_button = page.get_by_role("button", name="Launch 1 run")
    launch_button.wait_for()
    shot(page, "05_launch_experiment_chain")
    known = {r["runId"] for r in runs(dagster)}
    launch_button.click()
    ui_run = new_run(dagster, known, lambda r: partition_of(r) == PARTITION, nap)
    assert {tuple(a["path"]) for a in ui_run["assetSelection"]} >= {
        ("training",), ("tuned_params",), ("als_model",), ("evaluation",)}

    # 4. A second experiment while the first runs: each partition has its own storage.
    other_id = launch(dagster, [".".join(a["path"]) for a in ui_run["assetSelection"]],
                      OTHER_PARTITION)
    first = wait_for_success(dagster, ui_run["runId"], nap)
    second = wait_for_success(dagster, other_id, nap)
    assert first["startTime"] < second["endTime"] and second["startTime"] < first["endTime"], \
        "the two experiment runs did not overlap"
    # The in-process executor: every step of the chain in one process, so one SparkSession.
    processes = [m for m in engine_messages(dagster, ui_run["runId"])
                 if m.startswith("Executing steps in process")]
    assert len(processes) == 1, processes

    # 5. The run, as the UI shows it.
    open_page(page, dagster, f"/runs/{ui_run['runId']}")
    page.get_by_text("Success").first.wait_for()
    page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=60_000)  # the event log loaded
    shot(page, "06_run_succeeded")

    # 6. The model's materialization: params, metrics, versions, model path and plots.
    open_page(page, dagster, f"/assets/als_model?view=partitions&partition={PARTITION}")
    for label in ("experiment", "model", "rank", "reg_param", "fit_seconds", "validation_rmse",
                  "baseline_validation_rmse", "tuning_heatmap", "training_ratings",
                  "validation_vs_baseline", "storage_path"):
        page.get_by_text(label, exact=True).first.wait_for()
    shot(page, "07_als_model_metadata")
    page.get_by_text("storage_path", exact=True).first.scroll_into_view_if_needed()
    page.get_by_text("Show tags", exact=False).first.click()  # data and code version tags
    for text in ("code_version", "als_model-2", "data_version"):
        page.get_by_text(text, exact=True).first.wait_for()
    page.get_by_text("data_version", exact=True).first.scroll_into_view_if_needed()
    shot(page, "07_als_model_path_and_versions")
    show_plot(page, "tuning_heatmap", "tuning heatmap", "07_als_model_tuning_heatmap")
    show_plot(page, "training_ratings", "training ratings", "07_als_model_training_ratings")

    open_page(page, dagster, f"/assets/evaluation?view=partitions&partition={PARTITION}")
    for label in ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                  "baseline_rmse_global_mean", "most_popular_ndcg_at_k"):
        page.get_by_text(label, exact=True).first.wait_for()
    shot(page, "08_evaluation_metrics")
    show_plot(page, "metrics_vs_baselines", "test metrics vs baselines",
              "08_evaluation_metrics_vs_baselines")

    # 7. Neither run wrote into the other's storage.
    paths = {}
    for partition, run_id in ((PARTITION, ui_run["runId"]), (OTHER_PARTITION, other_id)):
        recorded_run, meta = latest_metadata(dagster, "als_model", partition)
        assert recorded_run == run_id
        path = Path(meta["storage_path"])
        assert f"/als_model/{partition}/" in str(path) and (path / "metadata").is_dir()
        current = (path.parents[1] / "CURRENT").read_text().strip()
        assert current == path.parent.name
        paths[partition] = path
        assert latest_metadata(dagster, "evaluation", partition)[0] == run_id
    assert paths[PARTITION] != paths[OTHER_PARTITION]

    # 8. The leaderboard links each experiment to its partition page.
    board_run = launch(dagster, ["experiment_leaderboard"])
    wait_for_success(dagster, board_run, nap)
    open_page(page, dagster, "/assets/experiment_leaderboard")
    page.locator("tr", has=page.get_by_text("leaderboard", exact=True)).first \
        .get_by_text("[Show Markdown]").click()
    link = page.locator(f"[role=dialog] a[href*='partition={PARTITION}']").first
    link.wait_for()
    page.locator(f"[role=dialog] a[href*='partition={OTHER_PARTITION}']").first.wait_for()
    shot(page, "09_leaderboard")
    link.click()
    wait_for("the evaluation partition page",
             lambda: "/assets/evaluation" in page.url and f"partition={PARTITION}" in page.url,
             30, sleep=nap)
    page.get_by_text("ndcg_at_k", exact=True).first.wait_for()
    shot(page, "10_leaderboard_link_to_partition")
