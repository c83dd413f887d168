"""Named volumes are the instance's own: engine names scoped to the instance, on one host and
on Swarm, with the old unscoped name kept only where it already holds the app's data. Pure."""

from __future__ import annotations

from controller.desired.resolve import container_spec
from controller.runtime.base import VolumeMount, volume_name
from controller.runtime.swarm import service_info
from controller.targets.swarm.plan import service_spec
from tests.builders import desired_app

DATA = [{"name": "data", "mountPath": "/data"}]


def test_container_volumes_are_scoped_to_the_instance() -> None:
    """The same manifest under two instances names two engine volumes; the manifest's own name
    rides along as the old name an existing deployment may still use."""
    want = desired_app("db", volumes=DATA)
    mine = container_spec(want, replica=0, instance="prod", revision="r")
    theirs = container_spec(want, replica=0, instance="staging", revision="r")
    assert mine.volumes == (VolumeMount("trueup-prod_data", "/data", legacy="data"),)
    assert theirs.volumes[0].name == "trueup-staging_data"


def test_scoped_names_of_different_instances_never_meet() -> None:
    """Instance and volume names may both hold '-': instance ``a`` with volume ``b-data`` and
    instance ``a-b`` with volume ``data`` still get different engine volumes."""
    assert volume_name("a", "b-data") != volume_name("a-b", "data")


def test_swarm_service_mounts_the_scoped_volume() -> None:
    """A new service mounts ``trueup-<instance>_<name>``, whatever volumes exist elsewhere."""
    spec = service_spec(desired_app("db", volumes=DATA), instance="prod", revision=None)
    assert [(v.name, v.mount_path) for v in spec.volumes] == [("trueup-prod_data", "/data")]


def test_swarm_update_keeps_the_old_name_the_service_already_mounts() -> None:
    """Upgrading: a running service that mounts ``data`` at ``/data`` (as trueup named it
    before) keeps it, so Swarm never rolls the app onto an empty volume; the old name at
    another path is not a reason to keep it."""
    want = desired_app("db", volumes=DATA)
    kept = service_spec(want, instance="prod", revision=None, mounted=[("data", "/data")])
    assert kept.volumes[0].name == "data"
    moved = service_spec(want, instance="prod", revision=None, mounted=[("data", "/elsewhere")])
    assert moved.volumes[0].name == "trueup-prod_data"


def test_service_rows_report_their_volume_mounts() -> None:
    """The service list row's named-volume mounts (not binds) are read as (source, target)."""
    row = {
        "ID": "s1",
        "Spec": {
            "Name": "prod-db",
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "busybox:1.36",
                    "Mounts": [
                        {"Type": "volume", "Source": "data", "Target": "/data"},
                        {"Type": "bind", "Source": "/srv", "Target": "/srv"},
                    ],
                }
            },
        },
    }
    assert service_info(row).volumes == (("data", "/data"),)
