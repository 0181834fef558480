"""What a person sees of a finished sweep in a real browser: Debian's Chromium, headless, driven
by Playwright, on a real `mlflow server` and a real `optuna-dashboard` over the shared sweep's
stores (tests.e2e.shared_sweep: some trials complete, some pruned).

Each test leaves a screenshot of its last page in pytest's temporary folder (kept for the last
three runs); a failing test prints its path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import optuna
import pytest

from pipeline.names import STATE_TAG
from pipeline.results.summary import MLFLOW_UI_ADDRESS
from tests.e2e.shared_sweep import STUDY, VENV_BIN, free_port, running_server, server_env
from tests.helpers import REPORT_PLOTS

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
)
expect = sync_api.expect  # waits until the page shows what is expected (the UI loads in parts)

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package chromium; .ci/run installs it
# No sandbox (root in CI), no GPU, and nothing that would reach out of this machine.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WINDOW = {"width": 1400, "height": 900}  # a laptop's browser window
PLOTS = REPORT_PLOTS


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path_factory, request):
    """A fresh browser profile each time (the UI's mode is kept per browser: it starts as a
    new user's); its last state is saved as a screenshot."""
    context = browser.new_context(viewport=WINDOW)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    path = folder / f"{request.node.name}.png"
    tab.screenshot(path=str(path))
    print(f"screenshot: {path}")  # shown with a failing test's output
    context.close()


def open_mlflow(page, url: str) -> None:
    """Open ``url`` as a person would, then close the assistant panel MLflow opens beside
    every page (it takes a third of the window). The UI polls: wait for `load` only."""
    page.goto(url, wait_until="load")
    page.get_by_role("link", name=STUDY).or_(page.get_by_text(STUDY, exact=True)).first.wait_for()
    close = page.locator("[data-component-id='mlflow.assistant.chat_panel.close']")
    if close.count():
        close.click()


def printed_link(sweep, base: str) -> str:
    """The link the sweep's summary printed, pointed at this test's server instead of the
    address `mlflow ui` serves on."""
    (line,) = [line for line in sweep.stdout.splitlines() if line.startswith("  then open ")]
    link = line.removeprefix("  then open ")
    assert link.startswith(MLFLOW_UI_ADDRESS + "/#/")
    return base + link.removeprefix(MLFLOW_UI_ADDRESS)


def trial_runs(sweep) -> list:
    client = sweep.client()
    return [client.get_run(run_id) for run_id in sweep.trial_run_ids]


def test_the_printed_link_opens_the_studys_run_in_the_training_view(page, mlflow_ui):
    sweep, base = mlflow_ui
    link = printed_link(sweep, base)
    assert re.search(rf"/runs/{sweep.parent_run_id}\?workflowType=machine_learning$", link)
    open_mlflow(page, link)
    overview = page.get_by_role("main").or_(page.locator("body")).first
    page.get_by_text("Child runs").first.wait_for()
    text = overview.inner_text()
    assert "Finished" in text and sweep.parent_run_id in text
    for run in trial_runs(sweep):  # its trials, listed as its child runs by name
        expect(page.get_by_role("link", name=run.info.run_name, exact=True)).to_be_visible()
    # The training view, not the GenAI overview a new user lands on otherwise.
    assert page.get_by_text("Detect Issues").count() == 0
    assert page.get_by_text("Model training").first.is_visible()
    # The champion's test score is attributed to its model; the study's metrics are not.
    rows = page.get_by_role("row")
    expect(rows.filter(has_text="test_accuracy").first).to_contain_text("champion")
    assert "champion" not in rows.filter(has_text="trials_pruned").first.inner_text()


def test_the_trials_are_nested_under_the_parent_and_pruned_ones_stand_out(page, mlflow_ui):
    sweep, base = mlflow_ui
    runs = trial_runs(sweep)
    pruned = [r for r in runs if r.data.tags[STATE_TAG] == "PRUNED"]
    complete = [r for r in runs if r.data.tags[STATE_TAG] == "COMPLETE"]
    assert pruned and complete  # the shared sweep has both (tests.e2e.shared_sweep)
    experiment = runs[0].info.experiment_id
    open_mlflow(page, f"{base}/#/experiments/{experiment}?workflowType=machine_learning")
    rows = page.get_by_role("row")

    def row_of(run):  # by the run's name link, exactly ("trial-1" is not "trial-10")
        return rows.filter(has=page.get_by_role("link", name=run.info.run_name, exact=True))

    assert row_of(pruned[0]).count() == 0  # nested: folded away under the parent
    expand = rows.filter(has_text=STUDY).locator(
        "[data-component-id$='runnamecellrenderer.tsx_46']"
    )
    expand.first.click()
    for run in runs:
        row_of(run).first.wait_for()
    names = {run.info.run_name for run in pruned}
    assert all(re.fullmatch(r"trial-\d+ \(pruned\)", name) for name in names)
    # The status mark beside the start time: a complete trial's and a pruned one's differ.
    marks = {colour_of_status_mark(row_of(run).first) for run in (complete[0], pruned[0])}
    assert len(marks) == 2

    open_mlflow(page, f"{base}/#/experiments/{experiment}/runs/{pruned[0].info.run_id}")
    expect(page.get_by_text("Killed", exact=True).first).to_be_visible()


def colour_of_status_mark(row) -> str:
    """The colour of the icon the runs table draws for a run's status (in its date cell)."""
    icon = row.locator("[aria-colindex='3'] [role='img']").first
    return icon.evaluate("element => getComputedStyle(element).color")


def test_the_parent_runs_artifacts_list_the_plots_and_one_opens_at_its_size(page, mlflow_ui):
    sweep, base = mlflow_ui
    experiment = sweep.client().get_run(sweep.parent_run_id).info.experiment_id
    open_mlflow(
        page,
        f"{base}/#/experiments/{experiment}/runs/{sweep.parent_run_id}?workflowType=machine_learning",
    )
    page.get_by_role("tab", name="Artifacts").or_(
        page.get_by_text("Artifacts", exact=True)
    ).first.click()
    page.get_by_text("plots", exact=True).first.click()
    for name in PLOTS:
        page.get_by_text(f"{name}.png", exact=True).first.wait_for()
    page.get_by_text("slice.png", exact=True).first.click()
    image = page.locator("img[src^='blob:']").first
    image.wait_for()
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
    )
    natural, shown = image.evaluate(
        "image => [image.naturalWidth, image.getBoundingClientRect().width]"
    )
    # Shown at its own size: the labels are as large as the plot drew them.
    assert shown >= 0.95 * natural, (natural, shown)


def test_optuna_dashboard_serves_the_study_from_its_journal_file(page, mlflow_ui):
    sweep, _ = mlflow_ui
    journal = sweep.folder / "mlruns" / "optuna.journal"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    best = optuna.load_study(study_name=STUDY, storage=storage).best_trial
    executable = shutil.which("optuna-dashboard", path=VENV_BIN)
    if executable is None:
        pytest.skip("optuna-dashboard is not installed: pip install -e '.[dev]'")
    port = free_port()
    # wsgiref, not gunicorn: gunicorn's graceful stop waits for the page's open connections.
    command = [executable, str(journal), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--server", "wsgiref", "--quiet"]
    base = f"http://127.0.0.1:{port}"
    with running_server(
        command, f"{base}/api/studies", server_env(sweep.tracking_uri), sweep.folder
    ):
        page.goto(f"{base}/dashboard", wait_until="load")
        page.get_by_text(STUDY).first.click()
        page.get_by_text(f"Best Trial (number={best.number})").wait_for()
        page.get_by_text("cv_accuracy_mean").first.wait_for()  # the axis, named after the metric
        assert page.get_by_text("Pruned", exact=True).count() >= 1  # the timeline's legend
