"""Webhooks: who may trigger a fetch, what is ignored, and why a burst costs two fetches."""

from __future__ import annotations

import asyncio
import json

from controller.webhooks import sign, signature_valid, token_valid
from tests.server.conftest import SECRET, Served

GITHUB_VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_signature_matches_githubs_documented_test_vector() -> None:
    """GitHub's own example (secret, "Hello, World!") verifies; a tampered body does not."""
    secret = SECRET.encode()
    assert sign(secret, b"Hello, World!") == GITHUB_VECTOR
    assert signature_valid(secret, b"Hello, World!", GITHUB_VECTOR)
    assert not signature_valid(secret, b"Hello, World?", GITHUB_VECTOR)
    assert not signature_valid(secret, b"Hello, World!", None)
    assert not signature_valid(secret, b"Hello, World!", "sha256=" + "0" * 64)
    assert not signature_valid(secret, b"Hello, World!", "sha256=\u00e9")


def test_gitlab_token_compares_whole_secret() -> None:
    """Only the exact shared secret passes: no prefix, no missing header."""
    assert token_valid(b"abc", "abc")
    assert not token_valid(b"abc", "ab")
    assert not token_valid(b"abc", None)


def push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "after": "0" * 40}).encode()


async def post_github(s: Served, body: bytes, event: str = "push", sig: str | None = None) -> int:
    headers = {
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sig if sig is not None else sign(SECRET.encode(), body),
    }
    async with s.http.post(f"{s.url}/hooks/github", data=body, headers=headers) as r:
        return r.status


async def test_github_webhook_statuses(served: Served) -> None:
    """Signed push 202, tampered 401, ping 200, other branch and other events ignored (200)."""
    assert await post_github(served, push()) == 202
    assert await post_github(served, push(), sig=sign(SECRET.encode(), push() + b" ")) == 401
    assert await post_github(served, push(), sig="") == 401
    assert await post_github(served, b'{"zen": "hi"}', event="ping") == 200
    assert await post_github(served, push("refs/heads/other")) == 200
    assert await post_github(served, b"{}", event="issues") == 200
    text = (await (await served.http.get(f"{served.url}/metrics")).read()).decode()
    for result, n in (("accepted", 1), ("unauthorized", 2), ("ping", 1), ("ignored", 2)):
        line = f'trueup_webhook_requests_total{{provider="github",result="{result}"}} {n}.0'
        assert line in text


async def test_gitlab_and_generic_webhooks(served: Served) -> None:
    """GitLab's token header and the generic HMAC header are checked like GitHub's."""
    url = served.url
    body = push()
    gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    async with served.http.post(f"{url}/hooks/gitlab", data=body, headers=gitlab) as r:
        assert r.status == 202
    wrong = {**gitlab, "X-Gitlab-Token": "guess"}
    async with served.http.post(f"{url}/hooks/gitlab", data=body, headers=wrong) as r:
        assert r.status == 401
    signed = {"X-Trueup-Signature-256": sign(SECRET.encode(), b"deploy")}
    async with served.http.post(f"{url}/hooks/generic", data=b"deploy", headers=signed) as r:
        assert r.status == 202
    async with served.http.post(f"{url}/hooks/generic", data=b"deploy!", headers=signed) as r:
        assert r.status == 401


async def test_body_over_a_mebibyte_gets_413(served: Served) -> None:
    """A 2 MiB body is refused with 413, whether announced by Content-Length or streamed."""
    big = b"x" * (2 * 1024 * 1024)
    async with served.http.post(f"{served.url}/hooks/github", data=big) as r:
        assert r.status == 413

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(32):
            yield b"y" * 65536

    async with served.http.post(f"{served.url}/hooks/generic", data=chunks()) as r:
        assert r.status == 413


async def test_burst_of_fifty_webhooks_costs_at_most_two_fetches(served: Served) -> None:
    """Fifty signed pushes at once fold into one fetch, plus at most one follow-up."""
    before = len(served.fetches)
    statuses = await asyncio.gather(*(post_github(served, push()) for _ in range(50)))
    assert statuses == [202] * 50
    await asyncio.sleep(0.5)
    assert 1 <= len(served.fetches) - before <= 2


async def test_signed_push_fetches_a_new_commit_at_once(served: Served) -> None:
    """The remote is polled every ten minutes; a webhook makes the new commit land now."""
    from tests.gitutil import commit_files
    from tests.server.conftest import manifest

    sha = commit_files(served.repo, {"apps/api.yaml": manifest("api")}, "add api")
    assert await post_github(served, push()) == 202
    async with asyncio.timeout(10):
        while "api" not in served.controller.status:
            await asyncio.sleep(0.05)
    assert served.controller.last_result is not None
    assert served.controller.last_result.revision == sha


async def test_webhooks_refused_without_a_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No --webhook-secret-file: every hook is 403 and says how to enable it."""
    from tests.server.conftest import serve

    s = await serve(tmp_path, secret=False)
    try:
        async with s.http.post(f"{s.url}/hooks/github", data=push()) as r:
            assert r.status == 403
            assert "--webhook-secret-file" in (await r.json())["message"]
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()
