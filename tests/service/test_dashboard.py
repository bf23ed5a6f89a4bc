"""The fleet dashboard in a real browser: Debian's Chromium driven by Playwright, against a
live uvicorn server on loopback. `.ci/run` installs Chromium; elsewhere each test is skipped,
and counted in pytest's summary, when /usr/bin/chromium is missing (never in CI, where it
must run)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import MODELS_DIR
from tests.service.conftest import live_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and os.environ.get("CI"):
    raise RuntimeError("CI must install Debian's chromium for the dashboard test (.ci/run does)")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)"
)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(Settings(models_dir=MODELS_DIR, providers="cpu")) as url:
        yield url


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        yield page
        browser.close()


def test_dashboard_scores_test_fd001_and_shows_a_trajectory(page, base_url, cmapss_dir, tmp_path):
    import gzip

    fleet = tmp_path / "test_FD001.txt"
    text = gzip.decompress((cmapss_dir / "test_FD001.txt.gz").read_bytes()).decode()
    # unit 3's sensor 4 is dead: the table must say so
    lines = [
        " ".join(f[:8] + ["0.0"] + f[9:]) if f[0] == "3" else " ".join(f)
        for f in map(str.split, text.splitlines())
    ]
    fleet.write_text("\n".join(lines) + "\n")
    with TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu"))) as api:
        predictions = api.post("/v1/models/fd001/score", files={"file": ("f.txt", fleet.read_bytes())}).json()
        explained = api.post(
            "/v1/models/fd001/score?explain=true", files={"file": ("f.txt", fleet.read_bytes())}
        )
    drivers = {p["unit"]: p["drivers"] for p in explained.json()["predictions"]}
    # ranked by P(failure within the default horizon), then by RUL
    (horizon,) = Settings().default_horizons
    ranked = sorted(predictions["predictions"], key=lambda p: (
        -p["failure_probabilities"][0]["probability"], p["rul"], p["unit"]))  # fmt: skip
    lowest = ranked[0]

    page.goto(base_url + "/")
    expect(page.locator("#model")).to_have_value("fd001")
    expect(page.locator("#model-info")).to_contain_text("running on CPUExecutionProvider")
    page.set_input_files("#file", str(fleet))
    page.get_by_role("button", name="Score fleet").click()
    rows = page.locator("#units tbody tr")
    expect(rows).to_have_count(100, timeout=60_000)  # scoring every cycle of 100 units takes a while
    first = rows.nth(0).locator("td")
    expect(page.locator("#horizon")).to_have_value(str(horizon))
    expect(page.locator("#p-fail-head")).to_have_text(f"P(fail ≤ {horizon} cycles)")
    expect(first.nth(0)).to_have_text(str(lowest["unit"]))
    expect(first.nth(2)).to_have_text(f"{lowest['failure_probabilities'][0]['probability']:.3f}")
    expect(first.nth(3)).to_have_text(f"{lowest['rul']:.1f}")
    expect(first.nth(5)).to_have_text(f"{lowest['rul_at_risk']['rul']:.1f}")
    last = rows.nth(99).locator("td")
    assert float(last.nth(2).inner_text()) <= float(first.nth(2).inner_text())
    expect(page.locator("#bars rect")).to_have_count(100)
    faulty = page.locator("#units tbody tr[data-unit='3']")
    expect(faulty.locator(".badge.quality")).to_have_text("⚠ degraded")
    expect(faulty.locator(".flagged")).to_have_text(" s_4")
    # the 7 units with fewer cycles than the window are a short history: degraded, named so
    short = page.locator("#units tbody tr[data-unit='1']")
    expect(short.locator(".badge.quality")).to_have_text("⚠ degraded")
    expect(short.locator(".flagged")).to_have_text(" short history")
    expect(page.locator("#units tbody .badge.quality.ok")).to_have_count(92)
    expect(page.locator("#fleet-summary")).to_contain_text("⚠ 8 with input warnings")

    rows.nth(0).focus()  # keyboard: Enter opens the trajectory
    page.keyboard.press("Enter")
    expect(page.locator("#trajectory")).to_be_visible()
    expect(page.locator("#trajectory-title")).to_have_text(
        f"Unit {lowest['unit']}: predicted RUL over cycles"
    )
    expect(page.locator("#trajectory-chart polyline")).to_have_count(1)
    expect(page.locator("#trajectory-chart rect.band")).to_have_count(2)  # degrading and critical bands
    assert page.locator("#trajectory-chart rect.mass").count() > 0  # the RUL's distribution, shaded
    top = drivers[lowest["unit"]][0]  # the drivers of the unit opened, as the API gives them
    expect(page.locator("#drivers li").first).to_contain_text(f"{top['column']}: ")
    expect(page.locator("#drivers li").first).to_contain_text(f"{abs(top['effect']):.1f} cycles")
    shot = Path(os.environ.get("RUL_SCREENSHOT", tmp_path / "dashboard.png"))
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_dashboard_shows_api_errors_in_the_apis_words(page, base_url, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    page.goto(base_url + "/")
    page.set_input_files("#file", str(bad))
    page.get_by_role("button", name="Score fleet").click()
    expect(page.locator("#error")).to_have_text(
        "422 Unprocessable Entity: bad.txt: line 1 has 3 columns; expected 26: "
        "unit, cycle, setting_1..3, s_1..s_21"
    )


def test_dashboard_asks_for_a_key_when_the_service_has_keys(page):
    with live_server(Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["k-1"])) as url:
        page.goto(url + "/")
        expect(page.locator("#key-field")).to_be_visible()
        expect(page.locator("#error")).to_contain_text("401")
        page.fill("#api-key", "k-1")
        page.locator("#api-key").dispatch_event("change")
        expect(page.locator("#model")).to_have_value("fd001")
        expect(page.locator("#error")).to_be_hidden()


def test_dashboard_files_are_served_without_internet(client):
    html = client.get("/").text
    assert "<title>RUL service — fleet dashboard</title>" in html
    assert "http" not in html.replace('xmlns="http', "")  # no CDN: only our own /static files
    assert (
        client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    )


def test_api_docs_render_without_the_internet(page, base_url):
    """Swagger UI comes from the installed package: any request leaving loopback is aborted
    (and counted), and the page still shows the API."""
    outside: list[str] = []

    def only_loopback(route):
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    try:
        page.goto(f"{base_url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("RUL service", timeout=20_000)
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
    finally:
        page.unroute("**/*")
    assert outside == []
