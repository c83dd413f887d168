"""trueup's exception hierarchy; every error that crosses a module boundary is one of these.

Foreign exceptions (docker, dulwich, yaml, OS errors) are translated where they arise, in the
adapter module that talks to the foreign library, with ``raise ... from exc`` so the cause is kept.
The split between transient and permanent *is* the retry policy: the controller loop retries
a pass that failed on a transient error with exponential backoff (1 s doubling, as the
per-app backoff), and one that failed on a permanent error at the next resync; an app whose
apply failed backs off the same way either way (``daemon/loop.py``).

    TrueupError
    ├── TransientError                 retry later: the world may fix itself
    │   ├── SourceUnavailable          git remote unreachable, fetch failed, timeout
    │   ├── RuntimeUnavailable         engine socket gone, 5xx, connection refused
    │   ├── RuntimeTimeout             an engine call exceeded its deadline
    │   └── RouterUnavailable          reverse proxy admin API unreachable
    └── PermanentError                 retrying the same input fails the same way
        ├── ConfigError                controller settings are invalid
        ├── RevisionNotFound           a --rev / --branch that git does not have
        ├── SourceError                the repository is unusable (not a repo, bad path)
        ├── PolicyError                a manifest asks for a host power the config refuses
        ├── SecretError                a secretRef names a missing secret or key
        │   └── SopsError(file)        a SOPS file of the repository cannot be decrypted
        ├── ImageNotFound              the image is not on the engine and cannot be pulled
        ├── BuildFailed(log_tail)      the image build failed
        ├── ContainerNotFound          an operation named a container that is gone
        ├── HealthCheckFailed          a new replica never became healthy
        └── RuntimeRejected            the engine refused a request (4xx)
"""

from __future__ import annotations


class TrueupError(Exception):
    """Base of every error trueup raises on purpose."""


class TransientError(TrueupError):
    """A failure that may go away by itself; retry later, with backoff."""


class PermanentError(TrueupError):
    """A failure that repeats for the same input; retry only when the input changes."""


class SourceUnavailable(TransientError):
    """The git remote could not be reached or the fetch failed part-way."""


class RuntimeUnavailable(TransientError):
    """The container engine did not answer (socket missing, refused, 5xx)."""


class RuntimeTimeout(TransientError):
    """An engine call took longer than its deadline."""


class RouterUnavailable(TransientError):
    """The reverse proxy's admin API did not answer."""


class ConfigError(PermanentError):
    """The controller's own settings are invalid."""


class RevisionNotFound(PermanentError):
    """A revision, tag or branch that the repository does not contain."""


class SourceError(PermanentError):
    """The repository itself cannot be used (not a git repository, bad path)."""


class PolicyError(PermanentError):
    """A manifest asks for a host-level power that the controller's config does not allow."""


class SecretError(PermanentError):
    """A secretRef names a secret file or key that does not exist."""


class SopsError(SecretError):
    """A SOPS-encrypted file of the repository that cannot be used (malformed, tampered with,
    not for the host's age identities, or a kind trueup does not support); ``file`` names it."""

    def __init__(self, message: str, *, file: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file


class ImageNotFound(PermanentError):
    """The image does not exist on the engine and cannot be pulled."""


class BuildFailed(PermanentError):
    """An image build failed; ``log_tail`` holds the last lines of its output."""

    def __init__(self, message: str, *, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []


class ContainerNotFound(PermanentError):
    """An operation named a container that no longer exists."""


class HealthCheckFailed(PermanentError):
    """A new replica did not become healthy within its allowance."""


class RuntimeRejected(PermanentError):
    """The engine refused the request as invalid (a 4xx answer other than not-found)."""
