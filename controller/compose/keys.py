"""The compose vocabulary trueup knows: the keys it maps, the keys Compose has that trueup
refuses ("not supported by trueup"), and the keys it accepts but ignores with a warning.

A key in none of these sets is unknown (a typo, most likely): the problem names the closest
known key (``did you mean 'restart'?``).
"""

from __future__ import annotations

import difflib

TOP_LEVEL = frozenset({"name", "services", "volumes", "networks", "secrets", "configs"})
TOP_LEVEL_IGNORED = frozenset({"version"})
TOP_LEVEL_UNSUPPORTED = frozenset({"include", "models"})

SERVICE = frozenset(
    {
        "image",
        "build",
        "command",
        "entrypoint",
        "environment",
        "env_file",
        "ports",
        "expose",
        "restart",
        "healthcheck",
        "depends_on",
        "deploy",
        "mem_limit",
        "cpus",
        "user",
        "working_dir",
        "init",
        "stop_signal",
        "stop_grace_period",
        "labels",
        "cap_add",
        "privileged",
        "network_mode",
        "networks",
        "volumes",
        "secrets",
        "configs",
        "profiles",
        "scale",
        "x-trueup",
    }
)
SERVICE_IGNORED = frozenset({"container_name", "hostname"})
SERVICE_UNSUPPORTED = frozenset(
    {
        "annotations",
        "attach",
        "blkio_config",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpuset",
        "credential_spec",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "driver_opts",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "ipc",
        "isolation",
        "label_file",
        "links",
        "logging",
        "mac_address",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "post_start",
        "pre_stop",
        "provider",
        "pull_policy",
        "read_only",
        "runtime",
        "security_opt",
        "shm_size",
        "stdin_open",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "userns_mode",
        "uts",
        "volumes_from",
    }
)

BUILD = frozenset({"context", "dockerfile", "args", "target"})
BUILD_UNSUPPORTED = frozenset(
    {
        "additional_contexts",
        "cache_from",
        "cache_to",
        "dockerfile_inline",
        "entitlements",
        "extra_hosts",
        "isolation",
        "labels",
        "network",
        "no_cache",
        "platforms",
        "privileged",
        "pull",
        "secrets",
        "shm_size",
        "ssh",
        "tags",
        "ulimits",
    }
)
HEALTHCHECK = frozenset({"test", "interval", "timeout", "retries", "start_period", "disable"})
HEALTHCHECK_UNSUPPORTED = frozenset({"start_interval"})
DEPENDS_ON = frozenset({"condition", "required", "restart"})
DEPLOY = frozenset({"replicas", "resources", "endpoint_mode"})
DEPLOY_UNSUPPORTED = frozenset(
    {"mode", "labels", "placement", "restart_policy", "rollback_config", "update_config"}
)
RESOURCES = frozenset({"limits"})
RESOURCES_UNSUPPORTED = frozenset({"reservations"})
LIMITS = frozenset({"memory", "cpus"})
LIMITS_UNSUPPORTED = frozenset({"pids", "devices"})
PORT = frozenset({"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"})
VOLUME = frozenset({"type", "source", "target", "read_only", "bind", "volume"})
VOLUME_UNSUPPORTED = frozenset({"tmpfs", "image", "consistency"})
VOLUME_BIND = frozenset({"create_host_path"})
VOLUME_BIND_UNSUPPORTED = frozenset({"propagation", "selinux", "recursive"})
VOLUME_VOLUME = frozenset({"nocopy"})
VOLUME_VOLUME_UNSUPPORTED = frozenset({"subpath"})
FILE_REF = frozenset({"source", "target", "uid", "gid", "mode"})
SERVICE_NETWORK = frozenset({"aliases"})
SERVICE_NETWORK_UNSUPPORTED = frozenset(
    {"ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "priority"}
    | {"driver_opts", "gw_priority", "interface_name"}
)
TOP_VOLUME = frozenset({"external", "name"})
TOP_VOLUME_UNSUPPORTED = frozenset({"driver", "driver_opts", "labels"})
TOP_NETWORK = frozenset({"external", "name"})
TOP_NETWORK_UNSUPPORTED = frozenset(
    {"driver", "driver_opts", "attachable", "enable_ipv4", "enable_ipv6", "ipam", "internal"}
    | {"labels"}
)
TOP_SECRET = frozenset({"file"})
TOP_SECRET_UNSUPPORTED = frozenset({"environment", "external", "name", "driver", "labels"})
TOP_CONFIG = frozenset({"file", "content"})
TOP_CONFIG_UNSUPPORTED = frozenset({"environment", "external", "name", "labels"})
X_TRUEUP = frozenset({"routes", "update", "reload", "suspend"})


def did_you_mean(key: str, known: frozenset[str]) -> str | None:
    """The known key closest to ``key`` (case, ``-``/``_`` and typos forgiven), if any."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if close:
        return close[0]
    squashed = {k.replace("_", "").replace("-", ""): k for k in known}
    return squashed.get(key.lower().replace("_", "").replace("-", ""))
