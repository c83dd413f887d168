"""Where ``--repo`` points: a local path or a remote URL, with its credentials kept apart.

``GitSource`` calls :func:`parse_location` once at start-up. The result tells local paths
(read in place) from remote URLs (fetched into a mirror), strips credentials out of the URL so
that messages, logs and the mirror's directory name never contain a secret, and reads an
optional token file on every fetch (so a rotated token is picked up without a restart).

Accepted forms: a filesystem path; ``file://``, ``git://``, ``http://``, ``https://``,
``ssh://`` (and ``git+ssh://``) URLs; scp-style ``[user@]host:path`` (git's rule: no slash
before the first colon).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from controller.errors import SourceError

Kind = Literal["local", "file", "git", "http", "ssh"]

_SCHEMES: dict[str, Kind] = {
    "file": "file",
    "git": "git",
    "http": "http",
    "https": "http",
    "ssh": "ssh",
    "git+ssh": "ssh",
    "ssh+git": "ssh",
}
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)$")

# The user name sent with a token when the URL names none; GitHub's convention, and accepted
# by most forges that authenticate HTTP git with "any user name + token as password".
DEFAULT_TOKEN_USER = "x-access-token"


@dataclass(frozen=True, repr=False)
class Credentials:
    """A user name and password (or token) for HTTP basic authentication.

    Its repr says which are set, never their values: a token is often given as the user name
    (``https://TOKEN@host/repo.git``), so the user name is as secret as the password.
    """

    username: str | None
    password: str | None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'***' if value is not None else None}"
            for name, value in (("username", self.username), ("password", self.password))
        )
        return f"Credentials({shown})"


@dataclass(frozen=True, repr=False)
class RepoLocation:
    """A parsed ``--repo``: its kind, its address and any URL credentials.

    ``address`` is what git is asked for: it has no user info, but keeps the query string,
    which may carry a token (``?private_token=...``). Show ``display`` (or the repr), never
    ``address``.
    """

    kind: Kind
    address: str
    url_credentials: Credentials = Credentials(None, None)

    @property
    def is_remote(self) -> bool:
        """True for anything fetched into a mirror (every URL, ``file://`` included)."""
        return self.kind != "local"

    @property
    def display(self) -> str:
        """The address for messages and logs: no password, and query values as ``***``."""
        return _redact_query(self.address)

    def __repr__(self) -> str:
        return f"RepoLocation(kind={self.kind!r}, display={self.display!r})"

    @property
    def mirror_name(self) -> str:
        """A stable directory name for this remote's mirror (hash of the credential-free URL)."""
        return hashlib.sha256(self.address.encode()).hexdigest()[:20]

    def credentials(self, token_file: Path | None = None) -> Credentials:
        """The credentials to send: the token file's token wins over a password in the URL.

        The token file is read on every call so a rotated token takes effect at the next fetch.
        A file that cannot be read, is not UTF-8 or is empty is a SourceError naming the file
        (never its content).
        """
        if token_file is None:
            return self.url_credentials
        try:
            raw = token_file.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SourceError(f"cannot read token file {token_file}: {reason}") from exc
        try:
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"token file {token_file} is not valid UTF-8 (bad byte at offset {exc.start})"
            ) from None  # the cause would carry the token's bytes
        if not token:
            raise SourceError(f"token file {token_file} is empty")
        return Credentials(self.url_credentials.username or DEFAULT_TOKEN_USER, token)


def parse_location(repo: str) -> RepoLocation:
    """Classify ``repo`` and split credentials out of it; SourceError when it cannot be used."""
    if not repo.strip():
        raise SourceError("--repo is empty")
    match = _URL.match(repo)
    if match:
        return _parse_url(repo, match.group("scheme").lower())
    scp = _SCP.match(repo)
    if scp and len(scp.group("host")) > 1:  # "C:..." would be a drive letter, not a host
        return RepoLocation("ssh", repo, Credentials(scp.group("user"), None))
    return RepoLocation("local", repo)


def _parse_url(repo: str, scheme: str) -> RepoLocation:
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise SourceError(
            f"unsupported --repo scheme {scheme!r} (use a path, file://, git://, "
            "http(s):// or ssh://)"
        )
    parts = urlsplit(repo)
    try:
        port = parts.port
    except ValueError as exc:
        raise SourceError(f"--repo has an invalid port: {_redact(repo)}") from exc
    if kind != "file" and not parts.hostname:
        raise SourceError(f"--repo URL has no host: {_redact(repo)}")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if username is not None and kind == "ssh":
        netloc = f"{quote(username, safe='')}@{netloc}"  # the ssh user is not a secret
    address = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return RepoLocation(kind, address, Credentials(username, password))


def _redact(url: str) -> str:
    """``url`` with anything between ``://`` and ``@`` and every query value replaced, for
    error messages."""
    return _redact_query(re.sub(r"://[^/@]*@", "://***@", url))


def _redact_query(url: str) -> str:
    """``url`` with the value of every query parameter (a bare one entirely) as ``***``; a
    query in a repository URL is there for a token (``?private_token=...``), if at all."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, _fragment = query.partition("#")
    items = []
    for item in query.split("&"):
        key, eq, _value = item.partition("=")
        items.append(f"{key}=***" if eq else ("***" if item else ""))
    return f"{base}?{'&'.join(items)}{'#***' if hash_sep else ''}"
