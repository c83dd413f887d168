"""Prometheus metrics of one controller, on a registry of its own (never the global one).

Two kinds of series. Events are counted as they happen: :class:`Metrics` is a pass observer of
the controller loop (``pass_finished``), hears every git fetch from the revision watcher
(``fetch_finished``) and every webhook from the server (``webhook``). State is read when
scraped: a custom collector turns the controller's app status, revision, manifest problems and
the runtime's API call counter into series, so a scrape always shows the present and a no-op
pass can be seen to cost exactly one ``list`` call.

Label values stay bounded: app names (as many as the repository has), fixed result words, and
a commit SHA only in ``trueup_revision_info``. Served by ``server.py`` at ``GET /metrics``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from controller.daemon.loop import Controller
    from controller.planning import Change
    from controller.reconciler import PassResult

#: A pass takes 10 ms (nothing to do) to minutes (builds, slow health checks).
PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
BUILD_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
FETCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: Why a replica was healed, as a bounded vocabulary (from the plan's replica step reasons).
_HEAL_REASONS = (
    ("missing", "missing"),
    ("exited", "exited"),
    ("is dead", "exited"),
    ("unhealthy", "unhealthy"),
    ("never started", "not_started"),
    ("duplicate", "duplicate"),
    ("no replica index", "unlabelled"),
)
_OP = re.compile(r"^[a-z_]{1,32}$")


def heal_reason(text: str) -> str:
    """Map a plan reason ("replica 1 exited (code 137)") to a bounded label value."""
    for needle, reason in _HEAL_REASONS:
        if needle in text:
            return reason
    return "other"


class Metrics:
    """The controller's counters and histograms, plus a collector for its current state."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconcile_total = Counter(
            "trueup_reconcile",
            "Reconcile passes by result: noop, changed, failed (an app failed) or error.",
            ["result"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "trueup_reconcile_duration_seconds",
            "Duration of reconcile passes.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.app_sync_total = Counter(
            "trueup_app_sync",
            "Changes applied to an app, by result (ok or failed).",
            ["app", "result"],
            registry=r,
        )
        self.drift_total = Counter(
            "trueup_drift_corrections",
            "Replicas healed after drifting from git (missing, exited, unhealthy, ...).",
            ["app", "reason"],
            registry=r,
        )
        self.builds_total = Counter(
            "trueup_builds",
            "Image builds from git, by result (ok or failed).",
            ["app", "result"],
            registry=r,
        )
        self.build_duration = Histogram(
            "trueup_build_duration_seconds",
            "Duration of image builds.",
            buckets=BUILD_BUCKETS,
            registry=r,
        )
        self.build_cache_hits = Counter(
            "trueup_build_cache_hits",
            "Builds skipped because the content-addressed image was already on the engine.",
            registry=r,
        )
        self.images_pruned = Counter(
            "trueup_images_pruned",
            "Images trueup built that image retention removed (unused, beyond image_keep).",
            registry=r,
        )
        self.image_bytes_freed = Counter(
            "trueup_image_bytes_freed",
            "Bytes the engine freed by image retention (removed images and dangling layers).",
            registry=r,
        )
        self.fetch_duration = Histogram(
            "trueup_git_fetch_duration_seconds",
            "Duration of git fetches (a ref read for a local repository).",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.fetch_errors = Counter(
            "trueup_git_fetch_errors", "Git fetches that failed.", registry=r
        )
        self.last_success = Gauge(
            "trueup_last_successful_reconcile_timestamp_seconds",
            "Unix time of the end of the last pass that converged every app it acted on.",
            registry=r,
        )
        self.webhooks_total = Counter(
            "trueup_webhook_requests",
            "Webhook requests by provider and result.",
            ["provider", "result"],
            registry=r,
        )
        self.notifications_total = Counter(
            "trueup_notifications",
            "Notifications and commit statuses by destination and final result.",
            ["destination", "result"],
            registry=r,
        )
        self.interval = Gauge(
            "trueup_reconcile_interval_seconds",
            "The resync interval: a full pass at least this often (for alerts on stalls).",
            registry=r,
        )
        if process:
            ProcessCollector(namespace="trueup", registry=r)
        self._state: StateCollector | None = None

    def attach(self, controller: Controller) -> None:
        """Export ``controller``'s state on every scrape and count its passes."""
        self.interval.set(controller.interval)
        self._state = StateCollector(controller)
        self.registry.register(self._state)
        controller.observers.append(self)

    # -- events ----------------------------------------------------------------------------

    def pass_finished(
        self, result: PassResult | None, *, outcome: str, duration_s: float, error: str | None
    ) -> None:
        self.reconcile_total.labels(outcome).inc()
        self.reconcile_duration.observe(duration_s)
        if outcome in ("noop", "changed"):
            self.last_success.set(time.time())
        if result is None:
            return
        if result.images is not None:
            self.images_pruned.inc(len(result.images.removed))
            self.image_bytes_freed.inc(result.images.bytes_freed)
        changes = {c.app: c for c in result.plan.changes}
        for o in result.outcomes:
            self.app_sync_total.labels(o.app, "ok" if o.ok else "failed").inc()
            change = changes.get(o.app)
            if o.ok and change is not None:
                for reason in corrections(change):
                    self.drift_total.labels(o.app, reason).inc()
            if o.build == "cached":
                self.build_cache_hits.inc()
            elif o.build in ("built", "failed"):
                self.builds_total.labels(o.app, "ok" if o.build == "built" else "failed").inc()
                self.build_duration.observe(o.build_s)

    def notification(self, destination: str, result: object) -> None:
        """One delivery's final result (``ok``, ``failed``, ``dropped``)."""
        self.notifications_total.labels(destination, getattr(result, "outcome", "failed")).inc()

    def fetch_finished(self, duration_s: float, error: object | None) -> None:
        self.fetch_duration.observe(duration_s)
        if error is not None:
            self.fetch_errors.inc()

    def webhook(self, provider: str, result: str) -> None:
        self.webhooks_total.labels(provider, result).inc()


def corrections(change: Change) -> list[str]:
    """The drift a change corrects, one reason per healed replica (or duplicate set)."""
    found = [heal_reason(step.reason) for step in change.steps]
    found += [heal_reason(r) for r in change.reasons if "duplicate" in r or "replica index" in r]
    return [reason for reason in found if reason != "other"]


class StateCollector(Collector):
    """Series read from the controller at scrape time."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterable[Metric]:
        c = self.controller
        info = GaugeMetricFamily(
            "trueup_app_info",
            "One series per app with its sync and health status (value 1).",
            labels=["app", "sync_status", "health_status"],
        )
        for tracked in c.status.values():
            s = tracked.status
            info.add_metric([s.name, s.sync, s.health], 1)
        yield info

        revision = GaugeMetricFamily(
            "trueup_revision_info",
            "The git revision of the last pass and the branch followed (value 1).",
            labels=["revision", "branch"],
        )
        latest = c.watcher.latest if c.watcher is not None else None
        sha = c.last_result.revision if c.last_result is not None else None
        sha = sha or (latest.sha if latest is not None else None)
        if sha:
            branch = (latest.branch if latest is not None else None) or ""
            revision.add_metric([sha, branch], 1)
        yield revision

        errors = GaugeMetricFamily(
            "trueup_manifest_errors",
            "Manifest problems (load, validation, resolution) in the last pass.",
        )
        errors.add_metric([], len(c.last_result.problems) if c.last_result else 0)
        yield errors

        waiting = GaugeMetricFamily(
            "trueup_pending_apps",
            "Apps the pending revision changes (manual sync: waiting for approval; else 0).",
        )
        pending = c.gate.pending
        waiting.add_metric([], len(pending.apps) if pending is not None else 0)
        yield waiting

        calls = CounterMetricFamily(
            "trueup_runtime_api_calls",
            "Container engine API requests by operation.",
            labels=["op"],
        )
        for op, n in sorted(_snapshot(c.runtime.calls).items()):
            calls.add_metric([op if _OP.match(op) else "other"], n)
        yield calls


def _snapshot(calls: Mapping[str, int]) -> dict[str, int]:
    """A copy of a counter other threads may be adding keys to."""
    for _ in range(5):
        try:
            return dict(calls)
        except RuntimeError:  # "dictionary changed size during iteration": try again
            continue
    return {}
