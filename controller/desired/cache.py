"""The desired state remembered, so a pass whose manifests did not change skips parsing,
validating and resolving them: across processes (a one-shot `trueup apply` or `trueup diff`
then never loads pydantic) and, in memory, across the controller loop's passes (`reuse`).

One JSON file in the state dir holds the last clean desired state, keyed by ``--path`` and its
git tree id, the host-power policy and this file's format. The key does not cover what lies
outside the tree, so a hit is used only after checking it again: every build context's tree id
is looked up afresh, and every secret is read again from the secrets dir (or decrypted again
from its SOPS file) and its digest compared with the one in the stored spec; every
``spec.files`` source is digested again and every secret file read (or decrypted) again;
every ``spec.envFrom`` file is read again and its digest compared. Secret values, env file
values and file contents are never written here: only which secret each variable or file
reads, and the digests the container labels carry anyway.

Only a clean state is stored (no manifest problem, no app that failed to resolve), so a hit
never hides a problem a user must see. Any unreadable, foreign or stale file is a miss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from controller.desired.envfiles import EnvFile, env_from_digest
from controller.desired.files import secret_bytes
from controller.desired.policy import Policy
from controller.desired.resolve import (
    BuildPlan,
    DesiredApp,
    DesiredState,
    WantedRoute,
    canonical_json,
    stored_secret,
)
from controller.desired.secrets import SecretStore
from controller.errors import TrueupError

log = structlog.get_logger(__name__)

FORMAT = 1
FILE_NAME = "desired-cache.json"


def cache_key(path: str, tree_id: str, policy: Policy, compose: str = "") -> str:
    """What the stored state depends on besides build contexts and secrets; ``compose`` is
    the digest of the host's compose inputs (`discovery.ComposeInputs.digest`)."""
    material = {
        "format": FORMAT,
        "path": path,
        "tree": tree_id,
        "policy": {
            "allow_privileged": policy.allow_privileged,
            "allow_host_network": policy.allow_host_network,
            "allowed_capabilities": sorted(policy.allowed_capabilities),
            "allowed_bind_paths": list(policy.allowed_bind_paths),
            "allowed_host_ports": [list(r) for r in policy.allowed_host_ports],
            "allow_volumes": list(policy.allow_volumes),
        },
    }
    if compose:
        material["compose"] = compose
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def store(state_dir: Path, key: str, desired: DesiredState) -> None:
    """Remember ``desired`` under ``key`` (atomically); a state with errors is not stored."""
    if desired.errors or desired.invalid or desired.load_failed:
        return
    document = {
        "format": FORMAT,
        "key": key,
        "apps": [_app_json(app) for app in desired.apps.values()],
    }
    tmp: str | None = None
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{FILE_NAME}.")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, separators=(",", ":"))
        os.replace(tmp, state_dir / FILE_NAME)
    except OSError as exc:  # a cache that cannot be written only costs speed
        log.warning("desired_cache_not_written", state_dir=str(state_dir), error=str(exc))
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def restore(
    state_dir: Path,
    key: str,
    *,
    revision: str | None,
    secrets: SecretStore,
    context_id: Callable[[str], str],
    file_digest: Callable[[str], str] | None = None,
    env_file: Callable[[str], EnvFile] | None = None,
) -> DesiredState | None:
    """The stored state for ``key`` at ``revision``, or None when there is none or it is stale
    (a build context or a secret changed since it was stored)."""
    try:
        document = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return None
    if document.get("key") != key:
        return None
    try:
        apps = [_app_from_json(item) for item in document["apps"]]
    except (KeyError, TypeError, ValueError):
        return None
    stored = DesiredState(revision=None, apps={app.name: app for app in apps})
    return reuse(
        stored,
        revision=revision,
        secrets=secrets,
        context_id=context_id,
        file_digest=file_digest,
        env_file=env_file,
    )


def reuse(
    state: DesiredState,
    *,
    revision: str | None,
    secrets: SecretStore,
    context_id: Callable[[str], str],
    file_digest: Callable[[str], str] | None = None,
    env_file: Callable[[str], EnvFile] | None = None,
) -> DesiredState | None:
    """``state`` at ``revision`` when every build context and secret it was resolved from is
    unchanged (apps with their secret values read again), else None.

    The controller loop calls this on every pass for the state it resolved last, so an
    unchanged tree costs a few digests instead of resolving every app again."""
    fresh = DesiredState(revision=revision)
    for name, app in state.apps.items():
        try:
            current = _current(app, secrets=secrets, context_id=context_id)
            if current is not None and app.spec.get("files"):
                current = _current_files(current, secrets=secrets, file_digest=file_digest)
            if current is not None and app.spec.get("envFrom"):
                current = _current_env_from(current, secrets=secrets, env_file=env_file)
        except (TrueupError, OSError, KeyError, TypeError):
            return None  # a secret that is gone: the full path reports it, located
        if current is None:
            return None
        fresh.apps[name] = current
    return fresh


def _current(
    app: DesiredApp, *, secrets: SecretStore, context_id: Callable[[str], str]
) -> DesiredApp | None:
    """``app`` with its secret values read again, or None when a context or secret changed."""
    if app.build is not None and context_id(app.build.context) != app.build.context_id:
        return None  # the context changed outside --path: the image tag changes
    secret_env: dict[str, str] = {}
    for variable, value in app.spec["env"].items():
        ref = stored_secret(value)
        if ref is None:
            continue
        secret, secret_key, stored_digest = ref
        current = secrets.get(secret, secret_key)
        if secrets.digest(app.name, variable, current) != stored_digest:
            return None  # the secret's value changed: the spec hash changes
        secret_env[variable] = current
    if secret_env == app.secret_env:
        return app
    return dataclasses.replace(app, secret_env=secret_env)


def _current_files(
    app: DesiredApp, *, secrets: SecretStore, file_digest: Callable[[str], str] | None
) -> DesiredApp | None:
    """``app`` with its secret files read again, or None when any ``spec.files`` digest
    (a git source's, or a secret file's) is no longer the stored one."""
    if file_digest is None:
        return None
    by_path = {entry.path: entry for entry in app.manifest.spec.files}
    secret_files: dict[str, bytes] = {}
    for item in app.spec["files"]:
        entry = by_path[item["path"]]
        if entry.content is not None:
            continue  # in the manifest itself: its digest cannot go stale
        if entry.source is not None and "sopsFile" not in item:
            if file_digest(entry.source) != item["digest"]:
                return None  # the file changed outside --path: the spec hash changes
            continue
        value = secret_bytes(entry, secrets)
        if secrets.file_digest(app.name, entry.path, value) != item["digest"]:
            return None
        secret_files[entry.path] = value
    return dataclasses.replace(app, secret_files=secret_files)


def _current_env_from(
    app: DesiredApp, *, secrets: SecretStore, env_file: Callable[[str], EnvFile] | None
) -> DesiredApp | None:
    """``app`` with its ``spec.envFrom`` variables read again, or None when a file's digest
    is no longer the stored one."""
    if env_file is None:
        return None
    merged: dict[str, str] = {}
    for item in app.spec["envFrom"]:
        found = env_file(str(item["file"]))
        if env_from_digest(app.name, found, secrets) != item["digest"]:
            return None
        merged.update(found.values)
    return dataclasses.replace(app, file_env=merged)


def _app_json(app: DesiredApp) -> dict[str, Any]:
    manifest = app.manifest.model_dump(mode="json", by_alias=True)
    return {
        "name": app.name,
        "spec": app.spec,
        "specHash": app.spec_hash,
        "replicas": app.replicas,
        "image": app.image,
        "build": dataclasses.asdict(app.build) if app.build is not None else None,
        "dependsOn": list(app.depends_on),
        "strategy": app.strategy,
        "suspend": app.suspend,
        "file": app.file,
        "restartPolicy": app.restart_policy,
        "routes": [dataclasses.asdict(r) for r in app.routes],
        "manifest": manifest,
        "adoptVolumes": sorted(app.adopt_volumes),
    }


def _app_from_json(item: Mapping[str, Any]) -> DesiredApp:
    """A stored app, without its secret values (`reuse` reads them)."""
    return DesiredApp(
        name=str(item["name"]),
        spec=item["spec"],
        spec_hash=str(item["specHash"]),
        replicas=int(item["replicas"]),
        image=str(item["image"]),
        build=BuildPlan(**item["build"]) if item["build"] is not None else None,
        depends_on=tuple(item["dependsOn"]),
        strategy=item["strategy"],
        suspend=bool(item["suspend"]),
        file=str(item["file"]),
        restart_policy=item["restartPolicy"],
        routes=tuple(WantedRoute(**r) for r in item["routes"]),
        manifest_source=item["manifest"],
        adopt_volumes=frozenset(item.get("adoptVolumes", ())),
    )
