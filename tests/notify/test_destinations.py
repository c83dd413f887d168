"""Destinations and commit statuses against real HTTP servers on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from controller.notify.commit_status import CommitStatuses, parse_repository
from controller.notify.delivery import Result, with_retries
from controller.notify.destinations import SIGNATURE_HEADER, AppriseDestination, Webhook
from controller.notify.events import Event
from controller.notify.message import Notice
from tests.notify.receiver import receiver

NOTICE = Notice(
    "prod",
    "a" * 40,
    "Bump web to 1.5",
    (Event("web", "deployed", "image 1.4 → 1.5"), Event("api", "failed", "image not found")),
)
ALL = frozenset({"deployed", "failed"})


async def test_webhook_body_is_a_cloudevent_signed_with_the_secret() -> None:
    """The receiver verifies the HMAC-SHA256 of the body and finds the plan's summary."""
    async with receiver() as rec:
        hook = Webhook("ops", rec.url + "/hook", b"s3cret", ALL)
        result = await hook.send(NOTICE)
    assert result.outcome == "ok"
    [seen] = rec.seen
    expected = "sha256=" + hmac.new(b"s3cret", seen.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(seen.headers[SIGNATURE_HEADER.lower()], expected)
    doc = json.loads(seen.body)
    assert doc["specversion"] == "1.0" and doc["source"] == "trueup/prod"
    assert doc["data"]["summary"] == "web: image 1.4 → 1.5; api: failed: image not found"
    assert doc["data"]["subject"] == "Bump web to 1.5"


async def test_a_500_is_retried_then_recorded_failed() -> None:
    """A destination answering 500 gets the retries, then the failure is the result."""
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    async with receiver(status=500) as rec:
        hook = Webhook("ops", rec.url, None, ALL)
        result = await with_retries(lambda: hook.send(NOTICE), sleep=sleep)
    assert result.outcome == "failed" and "500" in result.detail
    assert len(rec.seen) == 4 and waits == [1.0, 2.0, 4.0]


async def test_429_retry_after_is_honoured() -> None:
    """A 429 with Retry-After waits what the server asked."""
    waits: list[float] = []
    answers = [Result("retry", "HTTP 429", 7.0), Result("ok")]

    async def attempt() -> Result:
        return answers.pop(0)

    async def sleep(s: float) -> None:
        waits.append(s)

    assert (await with_retries(attempt, sleep=sleep)).outcome == "ok"
    assert waits == [7.0]


@pytest.mark.parametrize("scheme", ["json", "ntfy", "gotify"])
async def test_apprise_self_hostable_schemes_reach_the_receiver(scheme: str) -> None:
    """Apprise's json://, ntfy:// and gotify:// deliver the message to a local server."""
    async with receiver() as rec:
        host = rec.url.removeprefix("http://")
        url = {
            "json": f"json://{host}/notify",
            "ntfy": f"ntfy://{host}/trueup",
            "gotify": f"gotify://{host}/Atoken1234567",
        }[scheme]
        dest = AppriseDestination("chat", url, ALL)
        dest.check()
        result = await dest.send(NOTICE)
    assert result.outcome == "ok", result
    [seen] = rec.seen
    text = seen.body.decode()
    if text.startswith("{"):
        text = json.dumps(json.loads(text), ensure_ascii=False)
    assert "web: image 1.4 → 1.5" in text


@pytest.mark.parametrize(
    ("provider", "path", "auth", "states"),
    [
        (
            "github",
            "/repos/team/app/statuses/",
            ("Authorization", "Bearer T0K"),
            ["pending", "success"],
        ),
        (
            "gitlab",
            "/api/v4/projects/team%2Fapp/statuses/",
            ("Private-Token", "T0K"),
            ["running", "success"],
        ),
        (
            "gitea",
            "/api/v1/repos/team/app/statuses/",
            ("Authorization", "token T0K"),
            ["pending", "success"],
        ),
    ],
)
async def test_commit_status_endpoints_as_documented(
    provider: str, path: str, auth: tuple[str, str], states: list[str]
) -> None:
    """Each provider gets its documented path, auth header, body fields and state names."""
    async with receiver(status=201) as rec:
        api = rec.url + {"github": "", "gitlab": "/api/v4", "gitea": "/api/v1"}[provider]
        repo = parse_repository("https://git.example/team/app.git", provider=provider, api_url=api)
        statuses = CommitStatuses(repo, "T0K", "trueup/prod")
        sha = "b" * 40
        assert (await statuses.post(sha, "pending", "applying +1 ~0 -0", None)).outcome == "ok"
        assert (
            await statuses.post(sha, "success", "x" * 200, "http://dash/passes/3")
        ).outcome == "ok"
    assert [s.path for s in rec.seen] == [path + sha] * 2, [s.path for s in rec.seen]
    bodies = [json.loads(s.body) for s in rec.seen]
    assert [b["state"] for b in bodies] == states
    assert all(s.headers.get(auth[0].lower()) == auth[1] for s in rec.seen)
    assert all(b["context"] == "trueup/prod" for b in bodies)
    assert len(bodies[1]["description"]) == 140 and bodies[1]["target_url"].endswith("/3")
    if provider == "gitlab":
        assert all(b["name"] == "trueup/prod" for b in bodies)


def test_provider_comes_from_the_repo_url() -> None:
    """github.com and a gitlab host are recognised; the API base follows."""
    gh = parse_repository("git@github.com:team/app.git")
    assert (gh.provider, gh.api_url, gh.owner, gh.name) == (
        "github", "https://api.github.com", "team", "app",
    )  # fmt: skip
    gl = parse_repository("https://gitlab.example.com/group/sub/app")
    assert (gl.provider, gl.api_url, gl.owner) == (
        "gitlab", "https://gitlab.example.com/api/v4", "group/sub",
    )  # fmt: skip


async def test_a_retried_webhook_is_the_same_cloudevent() -> None:
    """A 503 then a retry: the receiver gets the same bytes twice (id, time, signature), so it
    can tell the retry is a duplicate; a destination's filtered copy keeps the identity."""
    notice = Notice("prod", "a" * 40, "Bump", NOTICE.events, "evt-1", 1_800_000_000.0)
    async with receiver(status=503) as rec:
        hook = Webhook("ops", rec.url, b"s3cret", ALL)
        first = await hook.send(notice)
        second = await hook.send(notice)
    assert (first.outcome, second.outcome) == ("retry", "retry")
    assert len(rec.seen) == 2 and rec.seen[0].body == rec.seen[1].body
    assert (
        rec.seen[0].headers[SIGNATURE_HEADER.lower()]
        == rec.seen[1].headers[SIGNATURE_HEADER.lower()]
    )
    doc = json.loads(rec.seen[0].body)
    assert (doc["id"], doc["time"]) == ("evt-1", "2027-01-15T08:00:00Z")
    only = notice.only(frozenset({"failed"}), "info")
    assert only is not None and (only.id, only.at) == ("evt-1", 1_800_000_000.0)
