"""Two apps claiming the same host + path is a validation error in both files."""

from __future__ import annotations

from controller.manifests.loader import load_files

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  ports: [{{name: http, containerPort: 8080}}]
  routes:
    - {{host: other.example.com, port: http}}
    - {{host: {host}, path: {path}, port: http}}
"""


def manifest(name: str, host: str, path: str = "/") -> bytes:
    return APP.format(name=name, host=host, path=path).encode()


def test_conflicting_routes_are_reported_in_both_files() -> None:
    """Each claimant names the other's file and line; ``/api/`` and ``/api`` are one route."""
    result = load_files(
        {
            "apps/a.yaml": manifest("a", "web.example.com", "/api/"),
            "apps/b.yaml": manifest("b", "web.example.com", "/api").replace(
                b"other.example.com", b"b-only.example.com"
            ),
            "apps/c.yaml": manifest("c", "c.example.com").replace(
                b"other.example.com", b"c-only.example.com"
            ),
        }
    )
    messages = [str(p) for p in result.problems if "web.example.com" in p.message]
    assert messages == [
        "apps/a.yaml:9:14: spec.routes[1]: route web.example.com/api is also claimed by "
        "app 'b' at apps/b.yaml:9",
        "apps/b.yaml:9:14: spec.routes[1]: route web.example.com/api is also claimed by "
        "app 'a' at apps/a.yaml:9",
    ]
    assert {"a", "b"} <= result.invalid_apps
    assert "c" in result.apps and result.failed_files >= {"apps/a.yaml", "apps/b.yaml"}


def test_distinct_paths_on_one_host_are_fine() -> None:
    """Same host, different prefixes: both valid."""
    result = load_files(
        {
            "a.yaml": manifest("a", "web.example.com", "/a"),
            "b.yaml": manifest("b", "web.example.com", "/b").replace(b"other.", b"b."),
        }
    )
    assert result.ok and set(result.apps) == {"a", "b"}
