"""Commit statuses on GitHub, GitLab and Gitea/Forgejo, through their documented REST APIs.

=========  ==================================================  ======================
GitHub     ``POST {api}/repos/{owner}/{repo}/statuses/{sha}``   ``Authorization: Bearer``
GitLab     ``POST {api}/projects/{owner%2Frepo}/statuses/{sha}`` ``PRIVATE-TOKEN``
Gitea      ``POST {api}/repos/{owner}/{repo}/statuses/{sha}``   ``Authorization: token``
=========  ==================================================  ======================

trueup's states are ``pending`` (a pass starts applying the revision), ``success`` and
``failure``; GitLab's names for them are ``running``, ``success`` and ``failed``. The context
is ``trueup/<instance>`` (GitLab: ``name``), the description at most 140 characters. The
provider comes from the repository URL (github.com, a host naming gitlab) unless configured.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from controller.errors import ConfigError
from controller.notify.delivery import Result, post_json
from controller.notify.message import cut

Provider = Literal["github", "gitlab", "gitea"]
State = Literal["pending", "success", "failure"]
GITLAB_STATES: dict[str, str] = {"pending": "running", "success": "success", "failure": "failed"}
DESCRIPTION_LIMIT = 140


@dataclass(frozen=True)
class Repository:
    """Where statuses go: the provider, the API base and the repository's path."""

    provider: Provider
    api_url: str
    owner: str
    name: str


def parse_repository(
    repo_url: str, *, provider: str | None = None, api_url: str | None = None
) -> Repository:
    """The repository of ``repo_url`` (https, ssh ``git@host:o/r.git`` or ``ssh://``)."""
    scp = re.match(r"^[\w.-]+@([\w.-]+):(.+)$", repo_url)
    if scp:
        host, path = scp.group(1), scp.group(2)
        scheme = "https"
    else:
        parts = urlsplit(repo_url)
        host, path = parts.hostname or "", parts.path
        scheme = "http" if parts.scheme == "http" else "https"
        if parts.port and parts.scheme in ("http", "https"):
            host = f"{host}:{parts.port}"
    segments = [s for s in path.strip("/").removesuffix(".git").split("/") if s]
    if not host or len(segments) < 2:
        raise ConfigError(f"commit_status: cannot tell owner/repository from {repo_url!r}")
    kind = provider or _guess(host)
    if kind not in ("github", "gitlab", "gitea"):
        raise ConfigError(f"commit_status: set provider (github, gitlab, gitea) for {host}")
    base = api_url or _default_api(kind, scheme, host)
    owner, name = "/".join(segments[:-1]), segments[-1]
    return Repository(kind, base.rstrip("/"), owner, name)  # type: ignore[arg-type]


def _guess(host: str) -> str | None:
    if host == "github.com":
        return "github"
    if "gitlab" in host:
        return "gitlab"
    if "gitea" in host or "forgejo" in host or host == "codeberg.org":
        return "gitea"
    return None


def _default_api(provider: str, scheme: str, host: str) -> str:
    if provider == "github":
        return "https://api.github.com" if host == "github.com" else f"{scheme}://{host}/api/v3"
    if provider == "gitlab":
        return f"{scheme}://{host}/api/v4"
    return f"{scheme}://{host}/api/v1"


def status_request(
    repo: Repository,
    token: str,
    sha: str,
    state: State,
    *,
    context: str,
    description: str,
    target_url: str | None,
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(url, headers, body) of one status, as the provider documents it."""
    description = cut(description, DESCRIPTION_LIMIT)
    body: dict[str, str] = {"state": state, "context": context, "description": description}
    if target_url:
        body["target_url"] = target_url
    if repo.provider == "github":
        url = f"{repo.api_url}/repos/{repo.owner}/{repo.name}/statuses/{sha}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    elif repo.provider == "gitlab":
        project = quote(f"{repo.owner}/{repo.name}", safe="")
        url = f"{repo.api_url}/projects/{project}/statuses/{sha}"
        headers = {"PRIVATE-TOKEN": token}
        body["state"] = GITLAB_STATES[state]
        body["name"] = context
    else:
        url = f"{repo.api_url}/repos/{repo.owner}/{repo.name}/statuses/{sha}"
        headers = {"Authorization": f"token {token}"}
    return url, headers, body


@dataclass
class CommitStatuses:
    """Posts one status at a time (the sender retries and keeps them from repeating)."""

    repo: Repository
    token: str
    context: str
    timeout: float = 10.0
    name: str = "commit-status"

    def __repr__(self) -> str:
        return f"CommitStatuses({self.repo.provider}, {self.repo.owner}/{self.repo.name})"

    async def post(
        self, sha: str, state: State, description: str, target_url: str | None
    ) -> Result:
        url, headers, body = status_request(
            self.repo,
            self.token,
            sha,
            state,
            context=self.context,
            description=description,
            target_url=target_url,
        )
        return await post_json(url, json.dumps(body).encode(), headers, timeout=self.timeout)
