"""Build the notifier's destinations and commit statuses from the ``notifications:`` settings.

Reads every URL, secret and token file once, at start (a missing or empty file is a
``ConfigError`` naming the file, never showing its content). Used by `trueup run` and
`trueup notify test`.
"""

from __future__ import annotations

from controller.errors import ConfigError
from controller.notify.commit_status import CommitStatuses, parse_repository
from controller.notify.destinations import AppriseDestination, Destination, Webhook, read_file
from controller.settings import NotificationSettings, Settings


def make_destinations(section: NotificationSettings) -> list[Destination]:
    out: list[Destination] = []
    for d in section.destinations:
        url = read_file(d.url_file, f"URL of destination {d.name}")
        kinds = frozenset(d.events)
        if d.type == "webhook":
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"destination {d.name}: a webhook URL is http(s)://")
            secret = read_file(d.secret_file, "webhook secret").encode() if d.secret_file else None
            out.append(
                Webhook(d.name, url, secret, kinds, d.min_severity, d.max_per_minute, d.timeout)
            )
        else:
            dest = AppriseDestination(
                d.name, url, kinds, d.min_severity, d.max_per_minute, d.timeout
            )
            dest.check()
            out.append(dest)
    return out


def make_statuses(settings: Settings) -> CommitStatuses | None:
    config = settings.notifications.commit_status
    if config is None:
        return None
    repo_url = config.repo_url or settings.repo
    repo = parse_repository(repo_url, provider=config.provider, api_url=config.api_url)
    token = read_file(config.token_file, "commit status token")
    return CommitStatuses(repo, token, f"trueup/{settings.instance}", config.timeout)
