"""The browser view: ``vdg viz`` served, loaded in headless Chromium, stepped.

Chromium is Debian's package (``/usr/bin/chromium``, or ``VDG_CHROMIUM``) driven by
Playwright; Playwright never downloads a browser here. Every request that leaves 127.0.0.1 is
blocked and recorded: the page must work offline. The screenshot after stepping is kept in
``results/browser/`` (printed).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("VDG_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCENARIO = """name = "browser"
feeder = "kerber-landnetz-kabel-1"
households = 8
seed = 4
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``vdg viz`` on a free port, stopped (its whole process group) at the end."""
    scenario = tmp_path / "browser.toml"
    scenario.write_text(SCENARIO)
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    vdg = Path(sys.executable).with_name("vdg")
    proc = subprocess.Popen([str(vdg), "viz", str(scenario), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vdg viz exited with {proc.returncode}: "
                            f"{(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("vdg viz did not answer within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _digest(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()


def _snap(page, timeout_s: float = 60.0) -> list[str]:
    """Digests of every image; Solara may replace an image while we look, so look again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return [_digest(img.screenshot()) for img in page.locator("img").all()]
        except PlaywrightError:
            assert time.monotonic() < deadline, "the figures kept re-rendering"
            time.sleep(0.5)


def test_viz_renders_and_changes_on_step(server: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the Debian package 'chromium' "
                    f"(apt-get install chromium) or point VDG_CHROMIUM at a Chromium binary")
    external: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})

            def route(r) -> None:
                url = r.request.url
                if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
                    r.continue_()
                else:
                    external.append(url)
                    r.abort()

            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server, wait_until="domcontentloaded")
            feeder = page.locator(".vdg-feeder img")
            feeder.wait_for(timeout=120_000)
            plots = page.locator("img").all()
            assert len(plots) >= 5  # the feeder and four time series
            status = page.locator(".vdg-status")
            assert "sessions cleared: 0" in status.inner_text()
            before = _snap(page)

            page.get_by_role("button", name="Step").click()
            page.wait_for_function(  # tick 0: day-ahead, the first intraday and real-time
                "() => document.querySelector('.vdg-status')?.innerText"
                ".includes('sessions cleared: 3')", timeout=120_000)
            for _ in range(3):  # to the end of the first hour: slot 0 delivered
                page.get_by_role("button", name="Step").click()
                time.sleep(0.5)
            page.wait_for_function(
                "() => document.querySelector('.vdg-status')?.innerText"
                ".includes('slots delivered: 1/24')", timeout=60_000)
            deadline = time.monotonic() + 30
            while True:  # the figures re-render after the status line
                after = _snap(page)
                if len(after) == len(before) and all(
                        a != b for a, b in zip(after, before, strict=True)):
                    break
                changed = [a != b for a, b in zip(after, before, strict=False)]
                assert time.monotonic() < deadline, f"figures changed after Step: {changed}"
                time.sleep(1)
            out = ROOT / "results" / "browser"
            out.mkdir(parents=True, exist_ok=True)
            shot = out / "vdg-viz-after-step.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            text = status.inner_text()
            assert "coordination rounds: 0" not in text
            page.get_by_role("button", name="Reset").click()
            page.wait_for_function(
                "() => document.querySelector('.vdg-status')?.innerText"
                ".includes('before the day')", timeout=120_000)
            assert "sessions cleared: 0" in status.inner_text()
        finally:
            browser.close()
    assert not external, f"the page fetched from outside 127.0.0.1: {external[:5]}"
    assert not errors, errors
