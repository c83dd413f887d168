"""The labels trueup puts on every container it owns; observed state is read back from them.

They are the controller's only memory that survives a restart: which instance owns a
container, which app and replica it is, which spec and revision it runs. See architecture.md,
"Ownership: labels on every container".
"""

from __future__ import annotations

import re

from controller.errors import ConfigError

INSTANCE = "trueup.instance"
APP = "trueup.app"
REPLICA = "trueup.replica"
SPEC_HASH = "trueup.spec-hash"
REVISION = "trueup.revision"
SPEC = "trueup.spec"
NETWORK = "trueup.network"
"""On an app network (``spec.networks``): its manifest name; with ``trueup.instance``, the owner."""
USER_PREFIX = "trueup.label."
IMAGE_INSTANCE = "trueup.image-instance"
"""On images trueup builds: the instance they were built for (image retention removes only
these). Not ``trueup.instance``: a container inherits its image's labels, so a container
someone starts by hand from such an image would look like one of the instance's own."""


INSTANCE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
"""An instance name: it goes into labels, engine object names and Caddy's admin API paths."""


def check_instance(name: str) -> str:
    """``name`` when it can name an instance, else `ConfigError` saying what is allowed.

    The one check for every source of the setting (flag, environment, config file) and for
    every adapter that builds a name or a URL from it.
    """
    if not INSTANCE_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid instance name {name!r}: use 1 to 32 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def image_filter(instance: str) -> str:
    """The engine-side label filter that selects every image trueup built for ``instance``."""
    return f"{IMAGE_INSTANCE}={instance}"


def instance_filter(instance: str) -> str:
    """The engine-side label filter that selects every container of ``instance``."""
    return f"{INSTANCE}={instance}"
