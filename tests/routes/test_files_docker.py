"""``spec.files`` end to end on a real dockerd behind a real Caddy: the page httpd serves comes
from git; a commit to it rolls the app with no failed request, and `diff` shows the change."""

from __future__ import annotations

import time

import pytest

from tests.routes.test_routes_docker import Load, Routed, routed  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

PAGE_APP = """\
apiVersion: trueup/v1
kind: App
metadata: {name: web}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /www"]
  replicas: 2
  files:
    - {path: /www/index.html, source: site/index.html}
    - {path: /www/healthz, source: site/healthz}
  ports: [{name: http, containerPort: 8080}]
  routes: [{host: web.test, port: http}]
  healthCheck: {http: {path: /healthz, port: http}, interval: 1s, timeout: 1s, retries: 2}
  init: true
  stopGracePeriod: 1s
"""


def test_a_page_from_git_rolls_under_load_and_other_commits_touch_nothing(
    routed: Routed,  # noqa: F811  (the fixture imported above)
) -> None:
    """httpd serves the committed page; a commit elsewhere keeps the same containers; `diff`
    shows the page's field and its unified diff; the apply of the new page drops no request
    of a client sending one every 20 ms, and ends serving it."""
    routed.commit(
        {"apps/web.yaml": PAGE_APP, "site/index.html": "page v1\n", "site/healthz": "ok\n"}
    )
    routed.trueup("apply", check=True)
    assert set(routed.answers("web.test", 4)) == {"page v1"}
    before = routed.short_ids("web")
    routed.commit({"README.md": "docs only\n"})
    assert "in sync" in routed.trueup("apply", check=True).stdout
    assert routed.short_ids("web") == before

    routed.commit({"site/index.html": "page v2\n"})
    diff = routed.trueup("diff")
    assert diff.returncode == 1, diff.stderr
    assert "files[/www/index.html]:" in diff.stdout
    assert "-page v1" in diff.stdout and "+page v2" in diff.stdout
    assert "files[/www/healthz]" not in diff.stdout
    with Load(routed.caddy, "web.test") as load:
        time.sleep(0.5)
        applied = routed.trueup("apply", check=True)
        time.sleep(0.5)
    assert "ok     web update" in applied.stdout
    assert load.failures == []
    pages = [body for _, status, body in load.results if status == 200]
    assert "page v1" in pages and set(pages[-5:]) == {"page v2"}
    assert routed.short_ids("web").isdisjoint(before)
