"""Publishing a host port is a host power: refused unless the controller's policy allows it;
``hostIp`` is an IP address, spelt ``hostIp``, and refused on Swarm. Pure, no engine."""

from __future__ import annotations

import pytest

from controller.desired.policy import Policy, parse_port_range
from controller.errors import ConfigError, PolicyError
from controller.manifests.loader import load_files
from controller.settings import load_settings
from controller.targets.swarm.plan import service_spec
from tests.builders import app, desired_app

PORT = {"name": "http", "containerPort": 8080}


def resolve_with(policy: Policy, **port: object) -> None:
    from controller.desired.resolve import resolve_app
    from controller.desired.secrets import SecretStore

    resolve_app(
        app("web", ports=[{**PORT, **port}]),
        file="apps/web.yaml",
        secrets=SecretStore(),
        context_ids={},
        policy=policy,
    )


@pytest.mark.parametrize("host_port", [22, 80, 443, 8080])
def test_host_port_is_refused_without_policy(host_port: int) -> None:
    """No policy, no host port: 22, 80, 443 on 0.0.0.0 are refused like any other."""
    with pytest.raises(PolicyError, match=rf"spec.ports\[0\].hostPort: host port {host_port} "):
        resolve_with(Policy(), hostPort=host_port)


def test_host_port_inside_an_allowed_range_or_port_resolves() -> None:
    """Allowed ranges are inclusive; a single allowed port allows just that one."""
    policy = Policy(allowed_host_ports=(parse_port_range("8000-9000"), parse_port_range(443)))
    for ok in (8000, 8500, 9000, 443):
        resolve_with(policy, hostPort=ok, hostIp="127.0.0.1")
    for refused in (7999, 9001, 80):
        with pytest.raises(PolicyError):
            resolve_with(policy, hostPort=refused)


def test_a_port_without_host_port_needs_no_policy() -> None:
    """Container ports reached over the managed network are not a host power."""
    resolve_with(Policy())


@pytest.mark.parametrize("bad", ["80-22", "0", "65536", "http", "1-2-3", ""])
def test_port_range_syntax_is_checked(bad: str) -> None:
    """Ranges are first-last within 1..65535; anything else is refused."""
    with pytest.raises(ValueError):
        parse_port_range(bad)


def test_allowed_host_ports_from_config_and_environment(tmp_path: object) -> None:
    """``allowed_host_ports`` in the config file (ints or ranges) or TRUEUP_ALLOWED_HOST_PORTS
    (comma-separated) reach the policy; a bad range is a config error."""
    from pathlib import Path

    config = Path(str(tmp_path)) / "trueup.yaml"
    config.write_text('allowed_host_ports: [8080, "9000-9100"]\n')
    settings = load_settings(config, {}, env={})
    assert settings.policy().allowed_host_ports == ((8080, 8080), (9000, 9100))
    env = load_settings(None, {}, env={"TRUEUP_ALLOWED_HOST_PORTS": "80,8000-8999"})
    assert env.policy().allowed_host_ports == ((80, 80), (8000, 8999))
    with pytest.raises(ConfigError, match="allowed_host_ports"):
        load_settings(None, {}, env={"TRUEUP_ALLOWED_HOST_PORTS": "9000-80"})


MANIFEST = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: x\n"


def problems(ports: str) -> list[str]:
    result = load_files({"apps/web.yaml": (MANIFEST + f"  ports: [{ports}]\n").encode()})
    return [str(p) for p in result.problems]


def test_host_ip_must_be_an_ip_address() -> None:
    """A host name or garbage in ``hostIp`` is a located error; v4 and v6 are accepted."""
    (message,) = problems("{name: p, containerPort: 80, hostPort: 8080, hostIp: localhost}")
    assert message.startswith("apps/web.yaml:6:64: spec.ports[0].hostIp: 'localhost' is not an IP")
    assert problems("{name: p, containerPort: 80, hostPort: 8080, hostIp: 127.0.0.1}") == []
    assert problems("{name: p, containerPort: 80, hostPort: 8080, hostIp: '::1'}") == []


def test_host_ip_spelt_the_readme_way_gets_a_hint() -> None:
    """``hostIP`` (the old README spelling) is an unknown field pointing at ``hostIp``."""
    (message,) = problems("{name: p, containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}")
    assert (
        message == "apps/web.yaml:6:56: spec.ports[0].hostIP: unknown field; did you mean 'hostIp'?"
    )


def test_host_ip_without_host_port_names_host_ip() -> None:
    """The cross-field rule speaks of ``hostIp``, the field's real name."""
    (message,) = problems("{name: p, containerPort: 80, hostIp: 127.0.0.1}")
    assert "spec.ports[0].hostIp: hostIp is only meaningful together with hostPort" in message


def test_swarm_refuses_host_ip() -> None:
    """The routing mesh publishes on every node: a ``hostIp`` would be silently ignored, so the
    service is refused naming the field; a plain ``hostPort`` is published."""
    policy = Policy(allowed_host_ports=((8080, 8080),))
    from controller.desired.resolve import resolve_app
    from controller.desired.secrets import SecretStore

    def want(**port: object) -> object:
        return resolve_app(
            app("web", ports=[{**PORT, "hostPort": 8080, **port}]),
            file="apps/web.yaml",
            secrets=SecretStore(),
            context_ids={},
            policy=policy,
        )

    with pytest.raises(PolicyError, match=r"spec.ports\[0\].hostIp: not supported on swarm"):
        service_spec(want(hostIp="127.0.0.1"), instance="i", revision=None)  # type: ignore[arg-type]
    spec = service_spec(want(), instance="i", revision=None)  # type: ignore[arg-type]
    assert [(p.container_port, p.host_port) for p in spec.ports] == [(8080, 8080)]
    assert desired_app("api").spec["ports"] == []


@pytest.mark.parametrize("path", ["/a\\x01b", "/a\\x7f", "/a\\tb"])
def test_health_check_path_refuses_control_characters(path: str) -> None:
    """A control character in the http check's path is a located error, not shell input."""
    text = MANIFEST + "  ports: [{name: p, containerPort: 80}]\n"
    text += f'  healthCheck: {{http: {{path: "{path}", port: p}}}}\n'
    (message,) = [str(p) for p in load_files({"apps/web.yaml": text.encode()}).problems]
    assert message.startswith("apps/web.yaml:7:30: spec.healthCheck.http.path: ")
    assert "is not a URL path" in message


def test_health_check_url_is_one_shell_word() -> None:
    """``&``, ``;`` and ``$`` in the query stay inside the URL wget and curl are given."""
    from controller.desired.resolve import healthcheck_spec

    want = app(
        "web", ports=[PORT], healthCheck={"http": {"path": "/h?a=1&b=$(id);c", "port": 8080}}
    )
    check = healthcheck_spec(want.spec)
    assert check is not None
    url = "'http://127.0.0.1:8080/h?a=1&b=$(id);c'"
    assert check.test == (
        "CMD-SHELL",
        f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}",
    )
