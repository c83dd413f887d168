"""Fixtures of the browser tests: one headless Chromium per module (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium, never downloading a browser or a driver) and
``trueup run`` subprocesses on the real dockerd, each on a git repository of its own.

The browser tests skip when Chromium or a Docker engine is missing, unless
``TRUEUP_REQUIRE_DOCKER`` is set (CI sets it): then they fail.
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
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_DOCKER, _engine_reachable
from tests.gitutil import make_repo

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "browser-test-token"
SCREENSHOTS = os.environ.get("TRUEUP_SCREENSHOTS")
"""A folder to save the pages' screenshots into (``docs/screenshots`` regenerates the
README's); unset: none are taken."""


def unavailable(reason: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        unavailable("no chromium/chromedriver: run scripts/ensure-test-tools")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Running:
    """One `trueup run` subprocess, its repository, state dir and API."""

    repo: Path
    state: Path
    instance: str
    url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        config = self.state.parent / f"{self.instance}.yaml"
        token = self.state.parent / f"{self.instance}.token"
        token.write_text(TOKEN + "\n")
        doc = {"api_token_file": str(token), **self.config}
        config.write_text(json.dumps(doc))
        cmd = [sys.executable, "-m", "controller", "run", "--config", str(config),
               "--repo", str(self.repo), "--instance", self.instance,
               "--state-dir", str(self.state), "--interval", "10m",
               "--listen", self.url.removeprefix("http://")]  # fmt: skip
        out = open(self.log, "ab")  # noqa: SIM115  # closed when the process is reaped
        env = {**os.environ, "TRUEUP_LOG_FORMAT": "json"}
        self.process = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as answer:
            return json.loads(answer.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` as JSON with the API token."""
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def overview(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = self.api("/api/v1/overview")
        except OSError:
            return {}
        return doc

    def app(self, name: str) -> dict[str, Any]:
        return next((a for a in self.overview().get("apps", []) if a["name"] == name), {})

    def healthy(self, *names: str) -> bool:
        doc = self.overview()
        apps = {a["name"]: a for a in doc.get("apps", [])}
        return not doc.get("running") and all(
            apps.get(n, {}).get("health") == "Healthy" and apps[n]["sync"] == "Synced"
            for n in names
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def remove_instance(name: str) -> None:
    """Every container and network of instance ``name`` (what the tests made, nothing else)."""
    import docker

    client = docker.from_env()
    try:
        label = f"trueup.instance={name}"
        for c in client.containers.list(ignore_removed=True, all=True, filters={"label": label}):
            c.remove(force=True)
        for n in client.networks.list(filters={"label": label}):
            with contextlib.suppress(docker.errors.APIError):
                n.remove()
    finally:
        client.close()


@contextlib.contextmanager
def controller(
    tmp: Path, files: dict[str, str], config: dict[str, Any] | None = None
) -> Iterator[Running]:
    """A running `trueup run` on a new repository holding ``files``; everything of its
    instance is removed afterwards."""
    reason = _engine_reachable()
    if reason is not None:
        unavailable(f"no usable Docker engine ({reason}); run scripts/ensure-docker")
    instance = f"t-{uuid.uuid4().hex[:10]}"
    repo = tmp / instance / "repo"
    make_repo(repo, files)
    state = tmp / instance / "state"
    url = f"http://127.0.0.1:{free_port()}"
    run = Running(repo, state, instance, url, tmp / instance / "controller.log",
                  config=config or {})  # fmt: skip
    try:
        run.start()
        yield run
    finally:
        run.stop()
        remove_instance(instance)
        if os.environ.get("TRUEUP_KEEP_BROWSER_LOGS") is None:
            shutil.rmtree(tmp / instance, ignore_errors=True)


def screenshot(driver: Any, name: str) -> None:
    """Save the page as ``<TRUEUP_SCREENSHOTS>/<name>.png`` when asked to."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(max(int(height), 600), 2400))
        try:
            driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))
        finally:
            driver.set_window_size(size["width"], size["height"])
