"""Webhooks: who may trigger a fetch, what is ignored, and why a burst costs at most two fetches."""

from __future__ import annotations

import asyncio
import json

from controller.http.webhooks import GENERIC_HEADER, sign, signature_valid, token_valid
from tests.http.conftest import SECRET, Served

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


async def test_body_over_the_cap_gets_413(served: Served) -> None:
    """A body over the 256 KiB default cap is refused with 413, whether announced by
    Content-Length or streamed (chunked) past the cap."""
    big = b"x" * (300 * 1024)
    headers = {"X-Hub-Signature-256": sign(SECRET.encode(), big), "X-GitHub-Event": "push"}
    async with served.http.post(f"{served.url}/hooks/github", data=big, headers=headers) as r:
        assert r.status == 413

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"y" * 65536

    headers = {GENERIC_HEADER: "sha256=" + "0" * 64}
    async with served.http.post(f"{served.url}/hooks/generic", data=chunks(), headers=headers) as r:
        assert r.status == 413


async def raw_post(
    url: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection and send a POST's head (and ``body``, which may be short of its
    Content-Length): what a client that has not finished sending looks like."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    return reader, writer


async def status_of(reader: asyncio.StreamReader, within: float = 2.0) -> int:
    """The status code of the response, which must come within ``within`` seconds."""
    line = await asyncio.wait_for(reader.readline(), within)
    return int(line.split()[1])


async def test_unauthenticated_posts_are_refused_before_their_body_is_sent(
    served: Served,
) -> None:
    """A post without a well-formed signature header (GitHub, generic) or with a wrong GitLab
    token gets 401 while its 200 KiB body has not even been sent: the body is never read."""
    length = str(200 * 1024)
    cases = [
        ("/hooks/github", {"X-GitHub-Event": "push"}),
        ("/hooks/github", {"X-Hub-Signature-256": "sha256=nothex"}),
        ("/hooks/generic", {}),
        ("/hooks/gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}),
        ("/hooks/gitlab", {"X-Gitlab-Event": "Push Hook"}),
    ]
    for path, headers in cases:
        reader, writer = await raw_post(served.url, path, {**headers, "Content-Length": length})
        try:
            assert await status_of(reader) == 401, (path, headers)
        finally:
            writer.close()


async def test_a_refused_sender_is_disconnected_not_drained(served: Served) -> None:
    """After refusing an unsigned post on its headers, the server closes the connection at
    once instead of reading (and discarding) the announced 200 KiB for up to 10 s."""
    headers = {"X-GitHub-Event": "push", "Content-Length": str(200 * 1024)}
    reader, writer = await raw_post(served.url, "/hooks/github", headers, b"x" * 1024)
    try:
        assert await status_of(reader) == 401
        await asyncio.wait_for(reader.read(), 2)  # the rest of the answer, then end of stream
    finally:
        writer.close()


async def test_content_length_over_the_cap_is_413_at_once(served: Served) -> None:
    """A well-formed signature with a Content-Length over the cap gets 413 before the body
    is sent (the cap is 256 KiB; 300 KiB was accepted for reading before)."""
    headers = {
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
        "X-GitHub-Event": "push",
        "Content-Length": str(300 * 1024),
    }
    reader, writer = await raw_post(served.url, "/hooks/github", headers)
    try:
        assert await status_of(reader) == 413
    finally:
        writer.close()


async def test_webhook_max_body_is_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`webhook_max_body` moves the cap: with 1 KiB, a signed 2 KiB push is 413, while a
    push under it is accepted."""
    from tests.http.conftest import serve

    s = await serve(tmp_path, webhook_max_body=1024)
    try:
        small = push()
        big = json.dumps({"ref": "refs/heads/main", "pad": "x" * 2048}).encode()
        for body, want in ((big, 413), (small, 202)):
            headers = {"X-Hub-Signature-256": sign(SECRET.encode(), body), "X-GitHub-Event": "push"}
            async with s.http.post(f"{s.url}/hooks/github", data=body, headers=headers) as r:
                assert r.status == want
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_concurrent_webhooks_past_the_bound_get_503_unread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With room for two webhooks at once, two senders still sending hold both slots: a third
    request gets 503 with Retry-After at once; when the two finish (202) there is room again."""
    from tests.http.conftest import serve

    s = await serve(tmp_path, webhook_concurrency=2)
    try:
        body = push()
        headers = {
            "X-Hub-Signature-256": sign(SECRET.encode(), body),
            "X-GitHub-Event": "push",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        slow = [await raw_post(s.url, "/hooks/github", headers, body[:10]) for _ in range(2)]
        async with asyncio.timeout(5):  # both are in their handlers, waiting for the rest
            while not s.server.webhooks._slots.locked():  # the bound itself, not a sleep
                await asyncio.sleep(0.02)
        async with s.http.post(f"{s.url}/hooks/github", data=body, headers=headers) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
        for reader, writer in slow:
            writer.write(body[10:])
            await writer.drain()
            assert await status_of(reader) == 202
            writer.close()
        async with s.http.post(f"{s.url}/hooks/github", data=body, headers=headers) as r:
            assert r.status == 202
        text = (await (await s.http.get(f"{s.url}/metrics")).read()).decode()
        assert 'trueup_webhook_requests_total{provider="github",result="busy"} 1.0' in text
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_deeply_nested_signed_json_is_400_not_500(served: Served) -> None:
    """A correctly signed push whose JSON nests 100 000 deep (json.loads would raise
    RecursionError) is a bad request, for GitHub and GitLab alike."""
    body = b"[" * 100_000 + b"]" * 100_000
    assert await post_github(served, body) == 400
    gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    async with served.http.post(f"{served.url}/hooks/gitlab", data=body, headers=gitlab) as r:
        assert r.status == 400
    form = b"payload=" + b"%5B" * 20_000
    headers = {
        "X-Hub-Signature-256": sign(SECRET.encode(), form),
        "X-GitHub-Event": "push",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    async with served.http.post(f"{served.url}/hooks/github", data=form, headers=headers) as r:
        assert r.status == 400


async def test_burst_of_fifty_webhooks_costs_at_most_two_fetches(served: Served) -> None:
    """Fifty signed pushes at once fold into one fetch, plus at most one follow-up."""
    before = len(served.fetches)
    statuses = await asyncio.gather(*(post_github(served, push()) for _ in range(50)))
    assert statuses == [202] * 50
    await asyncio.sleep(0.5)
    assert 1 <= len(served.fetches) - before <= 2


async def test_a_burst_spread_over_time_costs_at_most_two_fetches(served: Served) -> None:
    """300 signed pushes 5 ms apart (fetches of a local remote take 2-3 ms) fold into the
    fetch of the first one and one after the burst, which sees a commit made during it."""
    from tests.gitutil import commit_files
    from tests.http.conftest import manifest

    before = len(served.fetches)
    statuses = []
    sha = ""
    for i in range(300):
        if i == 150:
            sha = commit_files(served.repo, {"apps/api.yaml": manifest("api")}, "add api")
        statuses.append(await post_github(served, push()))
        await asyncio.sleep(0.005)
    assert statuses == [202] * 300
    async with asyncio.timeout(10):
        while "api" not in served.controller.status:
            await asyncio.sleep(0.05)
    assert served.controller.last_result is not None
    assert served.controller.last_result.revision == sha
    assert 1 <= len(served.fetches) - before <= 2


async def test_signed_push_fetches_a_new_commit_at_once(served: Served) -> None:
    """The remote is polled every ten minutes; a webhook makes the new commit land now."""
    from tests.gitutil import commit_files
    from tests.http.conftest import manifest

    sha = commit_files(served.repo, {"apps/api.yaml": manifest("api")}, "add api")
    assert await post_github(served, push()) == 202
    async with asyncio.timeout(10):
        while "api" not in served.controller.status:
            await asyncio.sleep(0.05)
    assert served.controller.last_result is not None
    assert served.controller.last_result.revision == sha


async def test_webhooks_refused_without_a_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No --webhook-secret-file: every hook is 403 and says how to enable it."""
    from tests.http.conftest import serve

    s = await serve(tmp_path, secret=False)
    try:
        async with s.http.post(f"{s.url}/hooks/github", data=push()) as r:
            assert r.status == 403
            assert "--webhook-secret-file" in (await r.json())["message"]
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()
