"""Parsing --repo: local paths vs URLs, credentials kept out of addresses, token files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import SourceError, SourceUnavailable
from controller.source import GitSource, parse_location
from controller.source.location import DEFAULT_TOKEN_USER, Credentials


@pytest.mark.parametrize(
    ("repo", "kind", "address"),
    [
        (".", "local", "."),
        ("/srv/deploy", "local", "/srv/deploy"),
        ("examples", "local", "examples"),
        ("./odd:name", "local", "./odd:name"),  # a slash before the colon: a path (git's rule)
        ("file:///srv/repo.git", "file", "file:///srv/repo.git"),
        ("git://example.com/app.git", "git", "git://example.com/app.git"),
        ("git://127.0.0.1:9999/app.git", "git", "git://127.0.0.1:9999/app.git"),
        ("https://example.com/org/app.git", "http", "https://example.com/org/app.git"),
        ("http://[::1]:8080/app.git", "http", "http://[::1]:8080/app.git"),
        ("HTTPS://Example.com/app.git", "http", "https://example.com/app.git"),
        ("ssh://git@example.com:2222/org/app.git", "ssh", "ssh://git@example.com:2222/org/app.git"),
        ("git+ssh://example.com/app.git", "ssh", "git+ssh://example.com/app.git"),
        ("git@github.com:org/app.git", "ssh", "git@github.com:org/app.git"),
        ("example.com:app.git", "ssh", "example.com:app.git"),
    ],
)
def test_forms_of_repo(repo: str, kind: str, address: str) -> None:
    """Each accepted form is classified and keeps a usable address."""
    location = parse_location(repo)
    assert (location.kind, location.address) == (kind, address)
    assert location.is_remote == (kind != "local")


def test_credentials_are_split_out_of_http_urls() -> None:
    """user:password in a URL goes to the credentials, never into the address or display."""
    location = parse_location("https://ci:p%40ss%2Fw@example.com:8443/org/app.git")
    assert location.address == "https://example.com:8443/org/app.git"
    assert location.display == location.address
    assert location.url_credentials == Credentials("ci", "p@ss/w")
    assert "p@ss" not in repr(location)
    plain = parse_location("https://example.com:8443/org/app.git")
    assert plain.mirror_name == location.mirror_name, "the mirror does not depend on credentials"
    assert parse_location("https://example.com/other.git").mirror_name != plain.mirror_name


def test_token_file_supplies_the_password(tmp_path: Path) -> None:
    """The token file's content (stripped) is the password; the URL's user name is kept."""
    token = tmp_path / "token"
    token.write_text("  ghp_abc123\n")
    assert parse_location("https://example.com/a.git").credentials(token) == Credentials(
        DEFAULT_TOKEN_USER, "ghp_abc123"
    )
    assert parse_location("https://bot@example.com/a.git").credentials(token) == Credentials(
        "bot", "ghp_abc123"
    )
    token.write_text("\n")
    with pytest.raises(SourceError, match="empty"):
        parse_location("https://example.com/a.git").credentials(token)
    with pytest.raises(SourceError, match="cannot read"):
        parse_location("https://example.com/a.git").credentials(tmp_path / "missing")


def test_token_file_that_is_not_utf8_or_not_a_file_is_a_source_error(tmp_path: Path) -> None:
    """Invalid UTF-8 and a folder are SourceErrors naming the file, never its content."""
    token = tmp_path / "token"
    token.write_bytes(b"ghp_s3cr\xff\xfeet\n")
    location = parse_location("https://example.com/a.git")
    with pytest.raises(SourceError, match="is not valid UTF-8") as info:
        location.credentials(token)
    assert str(token) in str(info.value) and "s3cr" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(SourceError, match=r"cannot read token file .*: Is a directory"):
        location.credentials(tmp_path)


@pytest.mark.parametrize(
    "repo",
    ["", "   ", "ftp://example.com/a.git", "https:///no-host", "https://u:pw@h:port/a.git"],
)
def test_unusable_repo_is_a_source_error(repo: str) -> None:
    """Unsupported schemes and malformed URLs raise SourceError without echoing a password."""
    with pytest.raises(SourceError) as info:
        parse_location(repo)
    assert "pw" not in str(info.value)


@given(st.text(alphabet="abcdefghij/:@.-_", min_size=1, max_size=30))
def test_parsing_never_crashes(repo: str) -> None:
    """Any string either parses or raises SourceError: never another exception."""
    try:
        location = parse_location(repo)
    except SourceError:
        return
    assert location.address


def test_ssh_remote_is_not_contacted_until_fetch(tmp_path: Path) -> None:
    """An scp-style remote is parsed at construction; a fetch to a dead host is transient."""
    with GitSource("git@host.invalid:org/app.git", state_dir=tmp_path, timeout=5) as source:
        assert source.is_remote
        assert not (tmp_path / "mirrors").exists()
        with pytest.raises(SourceUnavailable, match=r"git@host\.invalid:org/app\.git"):
            source.fetch()


def test_query_string_token_never_shows(tmp_path: Path) -> None:
    """A token in the URL's query is `***` in the display form, the repr, the fetch error,
    the log events and the mirror's recorded remote URL."""
    from structlog.testing import capture_logs

    token = "glpat-q7Secret"
    repo = f"http://127.0.0.1:1/org/app.git?private_token={token}&ref=main"
    location = parse_location(repo)
    assert location.display == "http://127.0.0.1:1/org/app.git?private_token=***&ref=***"
    assert token not in repr(location)
    with capture_logs() as logs, GitSource(repo, state_dir=tmp_path, timeout=2) as source:
        assert token not in source.display
        with pytest.raises(SourceUnavailable) as info:
            source.fetch()
    assert token not in str(info.value)
    assert logs and token not in repr(logs)
    configs = list((tmp_path / "mirrors").glob("*/config"))
    assert configs and all(token not in c.read_text() for c in configs)


def test_token_given_as_user_name_is_not_in_a_repr() -> None:
    """`https://TOKEN@host/repo.git` (GitHub's token-as-user form) keeps the token for the
    fetch, but neither the location's repr nor its credentials' repr shows it."""
    location = parse_location("https://ghp_Tok3nAsUser@example.com/org/app.git")
    assert location.url_credentials.username == "ghp_Tok3nAsUser"
    assert "ghp_Tok3nAsUser" not in repr(location)
    assert "ghp_Tok3nAsUser" not in repr(location.url_credentials)
    assert "ghp_Tok3nAsUser" not in f"{location.url_credentials}"
    assert "ghp_Tok3nAsUser" not in location.display
