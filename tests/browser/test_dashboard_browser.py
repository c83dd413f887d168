"""The dashboard in a real headless Chromium against a real `trueup run` on the real dockerd.

One browser and one controller (automatic sync) for the module, plus one controller in
manual mode for the approval test. What an operator sees: every app with its health; a
commit's row going Progressing then Healthy without a reload; a line printed after the log
view opened; Suspend holding an app through a commit and Resume applying it; in manual mode
the pending plan naming the changed field, Apply refused without the token and converging
with it. With ``TRUEUP_SCREENSHOTS=docs/screenshots`` the pages are saved as PNGs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.browser.conftest import TOKEN, Running, controller, screenshot, wait_for
from tests.gitutil import commit_files

pytestmark = [pytest.mark.integration]

WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: web}}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /tmp"]
  env: {{VERSION: "{version}"}}
  ports: [{{name: http, containerPort: 8080}}]
  healthCheck: {{http: {{path: /healthz, port: http}}, interval: 1s, timeout: 1s, retries: 3}}
  init: true
  stopGracePeriod: 1s
"""
WORKER = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: worker}}
spec:
  image: busybox:1.36
  command: [sh, -c, "while true; do echo tick; sleep 1; done"]
  env: {{BATCH: "{batch}"}}
  init: true
  stopGracePeriod: 1s
"""


def files(version: str = "1", batch: str = "1") -> dict[str, str]:
    return {
        "apps/web.yaml": WEB.format(version=version),
        "apps/worker.yaml": WORKER.format(batch=batch),
    }


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def auto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One controller in automatic sync for the module, converged on web and worker."""
    with controller(tmp_path_factory.mktemp("browser"), files()) as run:
        wait_for(lambda: run.healthy("web", "worker"), 60, "first convergence")
        yield run


def containers(client: docker.DockerClient, run: Running, app: str) -> list[Any]:
    label = [f"trueup.instance={run.instance}", f"trueup.app={app}"]
    for _ in range(10):
        try:
            return list(client.containers.list(ignore_removed=True, filters={"label": label}))
        except docker.errors.NotFound:  # removed between the list and its inspect
            time.sleep(0.1)
    return list(client.containers.list(ignore_removed=True, filters={"label": label}))


def env_of(container: Any, key: str) -> str | None:
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    return env.get(key)


def pending_of(run: Running) -> str | None:
    try:
        pending = run.api("/api/v1/status").get("pending") or {}
    except OSError:
        return None
    revision: str | None = pending.get("revision")
    return revision


def cell(driver: Any, app: str, column: str) -> str | None:
    text: str | None = driver.execute_script(
        "const tr = [...document.querySelectorAll('#apps tbody tr')]"
        ".find((t) => t.dataset.app === arguments[0]);"
        "const c = tr && tr.querySelector('td.' + arguments[1]);"
        "return c ? c.textContent.trim() : null;",
        app,
        column,
    )
    return text


def notice(driver: Any) -> str:
    text: str = driver.execute_script(
        "const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent;"
    )
    return text


def use_token(driver: Any, token: str | None) -> None:
    from selenium.webdriver.common.by import By

    if token is None:
        driver.find_element(By.ID, "token-forget").click()
        return
    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.ID, "token-save").click()


def click(driver: Any, element_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, element_id).click()


def live(driver: Any) -> None:
    """Wait until the page's events stream is open."""
    wait_for(
        lambda: (
            driver.execute_script("return document.getElementById('live').textContent") == "live"
        ),
        10,
        "the events stream",
    )


def test_list_shows_every_app_with_its_health(browser: Any, auto: Running) -> None:
    """The list has one row per app, each Synced and Healthy, with its ready replicas; in
    automatic sync no pending banner shows."""
    browser.get(auto.url + "/")
    live(browser)
    assert cell(browser, "web", "health") == "Healthy"
    assert cell(browser, "worker", "health") == "Healthy"
    assert cell(browser, "web", "sync") == "Synced"
    assert cell(browser, "web", "ready") == "1/1"
    from selenium.webdriver.common.by import By

    assert not browser.find_element(By.ID, "pending").is_displayed()  # auto mode: no banner
    screenshot(browser, "apps")


def test_the_list_reads_on_a_phone(browser: Any, auto: Running) -> None:
    """At a phone's width (390 px) the page does not overflow sideways (the table scrolls in
    its own box) and the health badges are visible."""
    from selenium.webdriver.common.by import By

    size = browser.get_window_size()
    browser.set_window_size(390, 844)
    try:
        browser.get(auto.url + "/")
        live(browser)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, overflow
        badges = browser.find_elements(By.CSS_SELECTOR, "#apps .health .badge")
        assert badges and all(b.is_displayed() for b in badges)
        screenshot(browser, "apps-phone")
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_a_commit_turns_the_row_progressing_then_healthy_without_reload(
    browser: Any, auto: Running
) -> None:
    """With the list open, a commit that changes web shows Progressing, then Healthy at the
    new revision, on the same page (no reload), within seconds."""
    browser.get(auto.url + "/")
    live(browser)
    browser.execute_script(
        "window.__seen = []; window.__sameDocument = true;"
        "const read = () => { const tr = [...document.querySelectorAll('#apps tbody tr')]"
        "  .find((t) => t.dataset.app === 'web');"
        "  const b = tr && tr.querySelector('.health .badge');"
        "  const v = b ? b.textContent : null;"
        "  if (window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v); };"
        "read(); new MutationObserver(read).observe(document.getElementById('apps'),"
        "  {subtree: true, childList: true, characterData: true});"
    )
    started = time.monotonic()
    sha = commit_files(auto.repo, {"apps/web.yaml": WEB.format(version="2")}, "web v2")
    wait_for(
        lambda: (
            (cell(browser, "web", "rev") or "").startswith(sha[:12])
            and cell(browser, "web", "health") == "Healthy"
        ),
        30,
        "the row at the new revision, Healthy",
    )
    took = time.monotonic() - started
    seen = browser.execute_script("return window.__seen")
    assert browser.execute_script("return window.__sameDocument") is True  # never reloaded
    assert "Progressing" in seen and seen[-1] == "Healthy", seen
    assert seen.index("Progressing") < len(seen) - 1
    assert took < 20, took


def test_the_log_view_shows_a_line_printed_after_it_opened(
    browser: Any, auto: Running, engine: docker.DockerClient
) -> None:
    """The app page's log tail follows: a line the container prints after the page opened
    shows up in it."""
    browser.get(auto.url + "/apps/worker")
    live(browser)
    text = "return document.getElementById('logs').textContent"
    wait_for(lambda: "tick" in browser.execute_script(text), 15, "the log tail")
    mark = f"printed-after-open-{uuid.uuid4().hex[:8]}"
    (replica,) = containers(engine, auto, "worker")
    replica.exec_run(["sh", "-c", f"echo {mark} > /proc/1/fd/1"])
    wait_for(lambda: mark in browser.execute_script(text), 15, "the new line in the page")
    screenshot(browser, "app")


def test_suspend_holds_the_app_through_a_commit_and_resume_applies_it(
    browser: Any, auto: Running, engine: docker.DockerClient
) -> None:
    """Suspend (with the token) leaves worker's container as it is through a commit that
    changes it; Resume rolls the change out."""
    browser.get(auto.url + "/apps/worker")
    live(browser)
    use_token(browser, TOKEN)
    click(browser, "suspend")
    wait_for(lambda: "accepted" in notice(browser), 10, "the suspend to be accepted")
    wait_for(lambda: auto.app("worker").get("health") == "Suspended", 20, "worker Suspended")
    (before,) = containers(engine, auto, "worker")
    sha = commit_files(auto.repo, {"apps/worker.yaml": WORKER.format(batch="2")}, "worker 2")
    wait_for(
        lambda: auto.overview().get("revision") == sha and not auto.overview().get("running"),
        30,
        "a pass at the new revision",
    )
    time.sleep(1.0)
    (still,) = containers(engine, auto, "worker")
    assert still.id == before.id and env_of(still, "BATCH") == "1"
    click(browser, "resume")
    wait_for(lambda: "accepted" in notice(browser), 10, "the resume to be accepted")

    def rolled() -> bool:
        rows = containers(engine, auto, "worker")
        return len(rows) == 1 and env_of(rows[0], "BATCH") == "2"

    wait_for(rolled, 30, "worker to roll out after Resume")
    wait_for(lambda: auto.healthy("worker"), 30, "worker Synced and Healthy")


def test_manual_mode_shows_the_pending_plan_and_applies_only_with_the_token(
    browser: Any, tmp_path: Path, engine: docker.DockerClient
) -> None:
    """In manual mode a commit shows as pending with a plan naming the changed field;
    Apply without the token is refused and nothing changes; with it, web converges."""
    with controller(
        tmp_path, {"apps/web.yaml": WEB.format(version="1")}, {"sync": "manual"}
    ) as run:
        first = wait_for(lambda: pending_of(run), 30, "the first revision pending")
        run.post("/api/v1/apply", {"revision": first})  # a first start applies nothing unasked
        wait_for(lambda: run.healthy("web"), 60, "first convergence")
        (before,) = containers(engine, run, "web")
        sha = commit_files(run.repo, {"apps/web.yaml": WEB.format(version="3")}, "web v3")
        wait_for(lambda: pending_of(run) == sha, 30, "the commit pending")
        browser.get(run.url + "/apps/web")
        live(browser)
        plan = "return document.getElementById('plan').textContent"
        wait_for(lambda: "VERSION" in browser.execute_script(plan), 15, "the plan's field diff")
        screenshot(browser, "app-pending")
        browser.get(run.url + "/")
        live(browser)
        wait_for(
            lambda: browser.execute_script("return !document.getElementById('pending').hidden"),
            10,
            "the pending banner",
        )
        use_token(browser, None)
        click(browser, "apply")
        wait_for(lambda: "refused" in notice(browser), 10, "Apply refused without a token")
        time.sleep(1.0)
        (still,) = containers(engine, run, "web")
        assert still.id == before.id and env_of(still, "VERSION") == "1"
        use_token(browser, TOKEN)
        click(browser, "apply")
        wait_for(lambda: "accepted" in notice(browser), 10, "Apply accepted with the token")

        def converged() -> bool:
            rows = containers(engine, run, "web")
            return len(rows) == 1 and env_of(rows[0], "VERSION") == "3"

        wait_for(converged, 30, "web at v3")
        wait_for(
            lambda: (
                (cell(browser, "web", "rev") or "").startswith(sha[:12])
                and cell(browser, "web", "sync") == "Synced"
            ),
            20,
            "the row Synced at the applied revision",
        )
