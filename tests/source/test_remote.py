"""GitSource on remotes: fetched with dulwich into a bare mirror, over git://, file:// and http://.

git:// is served by a real ``git daemon`` on loopback; http:// by dulwich's smart-HTTP WSGI app
behind a small basic-auth check, so credentials from the URL and from a token file are really
sent and really checked.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import pytest

from controller.errors import RevisionNotFound, SourceError, SourceUnavailable
from controller.source import GitSource, Revision, RevisionWatcher
from tests.gitutil import commit_files, git
from tests.source.conftest import Remote, free_port, make_remote


def source_for(remote: Remote, state_dir: Path, **kwargs: Any) -> GitSource:
    return GitSource(remote.url, state_dir=state_dir, **kwargs)


def test_fetch_mirrors_the_remote_without_a_working_tree(remote: Remote, state_dir: Path) -> None:
    """fetch() over git:// returns the remote HEAD branch tip, mirrored bare under state_dir."""
    with source_for(remote, state_dir) as source:
        assert source.is_remote
        rev = source.fetch()
        assert rev == Revision(git(remote.work, "rev-parse", "HEAD"), "main")
        assert source.manifest_files(rev.sha, "apps").files["apps/web.yaml"].startswith(b"kind")
        mirror = source.mirror_path
    assert mirror is not None and mirror.parent == state_dir / "mirrors"
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"
    assert not (mirror / "apps").exists()
    assert git(mirror, "config", "remote.origin.url") == remote.url
    assert set(git(mirror, "for-each-ref", "--format=%(refname)").split()) == {
        "refs/heads/main",
        "refs/heads/feature",
        "refs/tags/v1",
    }


def test_older_rev_other_branch_and_new_commits(remote: Remote, state_dir: Path) -> None:
    """Tags, branches and older SHAs resolve in the mirror; a later fetch sees new commits."""
    first = git(remote.work, "rev-parse", "HEAD")
    with source_for(remote, state_dir, branch="feature") as source:
        assert source.fetch() == Revision(first, "feature")
        second = remote.commit({"apps/web.yaml": "v: 2\n"})
        assert source.fetch() == Revision(first, "feature"), "feature did not move"
        assert source.resolve("main") == Revision(second, "main")
        assert source.resolve("v1") == Revision(first, None)
        assert source.resolve(first[:8]).sha == first
        assert source.manifest_files(second, "apps").files["apps/web.yaml"] == b"v: 2\n"
        assert source.manifest_files(first, "apps").files["apps/web.yaml"].startswith(b"kind")


def test_resolve_fetches_a_sha_pushed_after_the_last_fetch(remote: Remote, state_dir: Path) -> None:
    """--rev naming a commit the mirror does not have yet triggers one more fetch."""
    with source_for(remote, state_dir) as source:
        source.fetch()
        newer = remote.commit({"apps/web.yaml": "v: 3\n"})
        assert source.resolve(newer).sha == newer
        with pytest.raises(RevisionNotFound, match="nothere"):
            source.resolve("nothere")


def test_force_push_moves_the_tip(remote: Remote, state_dir: Path) -> None:
    """A rewritten history is followed: the tip moves to the new commit, deleted refs go."""
    with source_for(remote, state_dir) as source:
        before = remote.commit({"apps/web.yaml": "bad: 1\n"}, "bad commit")
        assert source.fetch().sha == before
        git(remote.work, "reset", "-q", "--hard", "HEAD~1")
        rewritten = commit_files(remote.work, {"apps/web.yaml": "good: 1\n"}, "good commit")
        git(remote.work, "push", "-q", "-f", str(remote.bare), "HEAD:main")
        git(remote.bare, "branch", "-D", "feature")
        rev = source.fetch()
        assert rev == Revision(rewritten, "main")
        assert source.manifest_files(rev.sha, "apps").files["apps/web.yaml"] == b"good: 1\n"
        assert (
            git(source.mirror_path or Path(), "branch", "--format=%(refname)") == "refs/heads/main"
        )


def test_default_branch_comes_from_the_remote_head(
    served: Path, git_daemon: int, tmp_path: Path, state_dir: Path
) -> None:
    """Without --branch, the remote's HEAD branch is used, whatever its name."""
    work = tmp_path / "trunkwork"
    remote = make_remote(served, work, f"git://127.0.0.1:{git_daemon}/app.git")
    git(remote.bare, "symbolic-ref", "HEAD", "refs/heads/feature")
    with source_for(remote, state_dir) as source:
        assert source.fetch().branch == "feature"


def test_unreachable_remote_is_source_unavailable_naming_the_url(
    tmp_path: Path, state_dir: Path
) -> None:
    """Nothing listening (git://) or no repository (file://): SourceUnavailable, no traceback."""
    url = f"git://127.0.0.1:{free_port()}/app.git"
    with GitSource(url, state_dir=state_dir) as source:
        with pytest.raises(SourceUnavailable, match=f"cannot fetch {url}"):
            source.fetch()
        with pytest.raises(SourceUnavailable):
            source.resolve(None)
    missing = f"file://{tmp_path}/missing.git"
    with (
        GitSource(missing, state_dir=state_dir) as source,
        pytest.raises(SourceUnavailable, match=missing),
    ):
        source.fetch()


def test_missing_repository_on_a_running_daemon(git_daemon: int, state_dir: Path) -> None:
    """The daemon hangs up on an unknown repository: SourceUnavailable naming the URL."""
    url = f"git://127.0.0.1:{git_daemon}/nope.git"
    with GitSource(url, state_dir=state_dir) as source, pytest.raises(SourceUnavailable, match=url):
        source.fetch()


def test_failed_fetch_keeps_the_mirror_usable(remote: Remote, state_dir: Path) -> None:
    """After the remote goes away, what was fetched can still be read."""
    with source_for(remote, state_dir) as source:
        sha = source.fetch().sha
        remote.bare.rename(remote.bare.with_name("gone.git"))
        with pytest.raises(SourceUnavailable):
            source.fetch()
        assert "apps/web.yaml" in source.manifest_files(sha, "apps").files


def test_file_url_is_mirrored(repo: Path, state_dir: Path) -> None:
    """file:// is treated like any URL: fetched into a mirror, not read in place."""
    with GitSource(f"file://{repo}", state_dir=state_dir) as source:
        assert source.is_remote
        rev = source.fetch()
        assert rev == Revision(git(repo, "rev-parse", "HEAD"), "main")
        assert source.mirror_path is not None and source.mirror_path.is_relative_to(state_dir)


def test_mirror_is_reused_by_a_new_source(remote: Remote, state_dir: Path) -> None:
    """A restarted controller finds its mirror again and only fetches what is new."""
    with source_for(remote, state_dir) as source:
        first = source.fetch()
    with source_for(remote, state_dir) as source:
        assert source.fetch() == first
    assert len(list((state_dir / "mirrors").iterdir())) == 1


def test_reading_before_any_fetch_is_a_clear_error(remote: Remote, state_dir: Path) -> None:
    """manifest_files on a remote that was never fetched says so."""
    with source_for(remote, state_dir) as source, pytest.raises(SourceError, match="fetched"):
        source.manifest_files("0" * 40, "apps")


# -- smart HTTP with basic auth ------------------------------------------------------------

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def basic_auth(app: WsgiApp, user: str, password: str) -> WsgiApp:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"unauthorized"]
        return app(environ, start_response)

    return guarded


@pytest.fixture
def http_remote(served: Path, tmp_path: Path) -> Iterator[tuple[Remote, int]]:
    """The remote served over smart HTTP by dulwich on loopback, user ``ci`` / ``s3cret``."""
    from dulwich.repo import Repo
    from dulwich.server import DictBackend
    from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain

    remote = make_remote(served, tmp_path / "work", "")
    bare = Repo(str(remote.bare))
    app = basic_auth(make_wsgi_chain(DictBackend({"/app.git": bare})), "ci", "s3cret")
    port = free_port()
    server = make_server(
        "127.0.0.1",
        port,
        app,
        server_class=WSGIServerLogger,
        handler_class=WSGIRequestHandlerLogger,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield remote, port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        bare.close()


def test_http_with_credentials_in_the_url(http_remote: tuple[Remote, int], state_dir: Path) -> None:
    """http://user:password@host/... sends those credentials; messages never show the password."""
    remote, port = http_remote
    url = f"http://ci:s3cret@127.0.0.1:{port}/app.git"
    with GitSource(url, state_dir=state_dir) as source:
        assert source.fetch().sha == git(remote.work, "rev-parse", "HEAD")
        assert "s3cret" not in source.display
        assert "s3cret" not in str(source.mirror_path)
    wrong = f"http://ci:wrong@127.0.0.1:{port}/app.git"
    with (
        GitSource(wrong, state_dir=state_dir) as source,
        pytest.raises(SourceUnavailable, match="authentication failed") as info,
    ):
        source.fetch()
    assert f"127.0.0.1:{port}/app.git" in str(info.value)
    assert "wrong" not in str(info.value)


def test_http_with_a_token_file(
    http_remote: tuple[Remote, int], state_dir: Path, tmp_path: Path
) -> None:
    """A token file supplies the password (re-read on every fetch, so rotation works)."""
    remote, port = http_remote
    token = tmp_path / "token"
    token.write_text("outdated\n")
    url = f"http://ci@127.0.0.1:{port}/app.git"
    with GitSource(url, state_dir=state_dir, token_file=token) as source:
        with pytest.raises(SourceUnavailable):
            source.fetch()
        token.write_text("s3cret\n")
        assert source.fetch().sha == git(remote.work, "rev-parse", "HEAD")
        token.unlink()
        with pytest.raises(SourceError, match="token file"):
            source.fetch()


async def test_unusable_token_file_is_a_source_error_for_the_watcher(
    http_remote: tuple[Remote, int], state_dir: Path, tmp_path: Path
) -> None:
    """A token file of invalid UTF-8, or with characters basic auth cannot carry, fails the
    fetch with a SourceError the watcher keeps (no crash); a good token recovers."""
    remote, port = http_remote
    token = tmp_path / "token"
    url = f"http://ci@127.0.0.1:{port}/app.git"
    with GitSource(url, state_dir=state_dir, token_file=token) as source:
        watcher = RevisionWatcher(source, interval=600)
        for content, message in (
            (b"s3cret\xff\n", "is not valid UTF-8"),
            ("s3cret\u20ac\n".encode(), "characters HTTP basic authentication cannot carry"),
        ):
            token.write_bytes(content)
            assert await watcher.check() is None
            assert isinstance(watcher.error, SourceError)
            assert message in str(watcher.error) and "s3cret" not in str(watcher.error)
        token.write_text("s3cret\n")
        revision = await watcher.check()
        assert revision is not None and revision.sha == git(remote.work, "rev-parse", "HEAD")
        assert watcher.error is None


def test_mirror_packs_stay_bounded_and_complete(
    remote: Remote, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each fetch that brings commits adds a pack; past the limit they are merged into one,
    and the mirror still holds every revision (git fsck agrees)."""
    monkeypatch.setattr("controller.source.mirror.MAX_PACKS", 3)
    shas = []
    with source_for(remote, state_dir) as source:
        for i in range(8):
            shas.append(remote.commit({"apps/web.yaml": f"v: {i}\n"}, f"change {i}"))
            assert source.fetch().sha == shas[-1]
            mirror = source.mirror_path
            assert mirror is not None
            assert len(list((mirror / "objects" / "pack").glob("*.pack"))) <= 3
        for i, sha in enumerate(shas):
            assert source.manifest_files(sha, "apps").files["apps/web.yaml"] == f"v: {i}\n".encode()
    git(mirror, "fsck", "--strict")


def test_git_server_that_goes_quiet_fails_the_fetch_in_time(state_dir: Path) -> None:
    """A git:// server that accepts the connection and never answers: the fetch fails with
    SourceUnavailable after the source's timeout instead of blocking (and, through the
    source's lock, every later pass) for good."""
    import socket
    import time

    quiet = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(quiet.accept()[0])  # held open, never answered

    threading.Thread(target=accept, daemon=True).start()
    url = f"git://127.0.0.1:{quiet.getsockname()[1]}/app.git"
    outcome: list[BaseException | None] = []

    def fetch() -> None:
        try:
            with GitSource(url, state_dir=state_dir, timeout=1.0) as source:
                source.fetch()
            outcome.append(None)
        except BaseException as exc:  # reported by the asserts below
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(timeout=30)
    try:
        assert not worker.is_alive(), "the fetch still hangs after 30 s"
        assert time.monotonic() - started < 15
        (error,) = outcome
        assert isinstance(error, SourceUnavailable), error
        assert url in str(error)
        assert accepted, "the client never connected: nothing was tested"
    finally:
        quiet.close()
        for conn in accepted:
            conn.close()
