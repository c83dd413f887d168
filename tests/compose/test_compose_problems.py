"""Located problems of compose files: every problem of a file reported, each at its line;
unsupported keys named; a broken service fails alone; naming, profiles and hostile YAML."""

from __future__ import annotations

import pytest

from controller.compose.project import ProjectResult, load_project
from tests.manifests.test_hostile_yaml import BOMB, LONG_STRING_BOMB, MERGE_BOMB, VALUES

FILE = "apps/shop/compose.yaml"


def _load(text: str, file: str = FILE, **kw: object) -> ProjectResult:
    return load_project(file, text.encode(), dotenv=None, variables={}, **kw)  # type: ignore[arg-type]


def _errors(result: ProjectResult) -> list[str]:
    return [str(p) for p in result.problems]


def test_every_problem_of_a_file_is_reported_at_its_line() -> None:
    """Five mistakes in three services: five problems, each at its key or value."""
    result = _load(
        "services:\n"
        "  web:\n"
        "    image: nginx\n"
        "    restat: always\n"  # 4
        "    ports: ['80:80/sctp']\n"  # 5
        "  db:\n"
        "    image: postgres\n"
        "    healthcheck: {test: [CMD, pg_isready], interval: 10 seconds}\n"  # 8
        "  worker:\n"
        "    build: {context: ./w, dockerfil: Dockerfile}\n"  # 10
        "    depends_on: [dbb]\n"  # 11
    )
    assert _errors(result) == [
        f"{FILE}:4:5: services.web.restat: unknown key; did you mean 'restart'?",
        f"{FILE}:5:13: services.web.ports[0]: protocol 'sctp' is not supported (tcp or udp)",
        f"{FILE}:8:54: services.db.healthcheck.interval: '10 seconds' is not a duration; "
        "use e.g. 30s, 1m30s or 500ms",
        f"{FILE}:10:27: services.worker.build.dockerfil: unknown key; did you mean 'dockerfile'?",
        f"{FILE}:11:18: services.worker.depends_on[0]: no service named 'dbb' in this file",
    ]
    assert result.apps == []
    assert result.invalid_apps == {"shop-web", "shop-db", "shop-worker"}


def test_a_broken_service_fails_alone() -> None:
    """The other services of the file still translate; the broken one is left as it runs."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    sysctls: {net.core.somaxconn: 1024}\n"
        "  db:\n    image: postgres\n"
    )
    assert _errors(result) == [f"{FILE}:4:5: services.web.sysctls: not supported by trueup"]
    assert [a.app.name for a in result.apps] == ["shop-db"]
    assert result.invalid_apps == {"shop-web"}


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("extends: {service: x}", "services.web.extends: not supported by trueup"),
        ("platform: linux/arm64", "services.web.platform: not supported by trueup"),
        ("runtime: runsc", "services.web.runtime: not supported by trueup"),
        ("devices: [/dev/fuse]", "services.web.devices: not supported by trueup"),
        ("tmpfs: /run", "services.web.tmpfs: not supported by trueup"),
        ("logging: {driver: none}", "services.web.logging: not supported by trueup"),
        (
            "network_mode: 'service:db'",
            "services.web.network_mode: 'service:db' is not supported by trueup (host, none "
            "or bridge)",
        ),
        (
            "depends_on: {db: {condition: service_completed_successfully}}",
            "services.web.depends_on.db.condition: service_completed_successfully is not "
            "supported by trueup",
        ),
        (
            "networks: {default: {ipv4_address: 10.0.0.5}}",
            "services.web.networks.default.ipv4_address: not supported by trueup",
        ),
        (
            "volumes: [{type: tmpfs, target: /tmp}]",
            "services.web.volumes[0].type: 'tmpfs' mounts are not supported by trueup "
            "(volume, bind)",
        ),
    ],
)
def test_unsupported_keys_are_named(snippet: str, message: str) -> None:
    """What trueup does not do is an error naming the key, never silently ignored."""
    result = _load(
        f"services:\n  web:\n    image: nginx\n    {snippet}\n  db:\n    image: postgres\n"
    )
    assert [p.message for p in result.problems] == [message]
    assert result.problems[0].line == 4


def test_top_level_unsupported_and_ignored_keys() -> None:
    """``include`` is refused, ``version`` and ``x-*`` keys are ignored (version warns)."""
    result = _load(
        "version: '3.8'\ninclude: [other.yaml]\nx-common: &c {image: nginx}\nservices:\n  web: *c\n"
    )
    assert _errors(result) == [f"{FILE}:2:1: include: not supported by trueup"]
    assert [str(w) for w in result.warnings] == [f"{FILE}:1:1: version: ignored by trueup"]
    assert [a.app.name for a in result.apps] == ["shop-web"]


def test_ignored_service_keys_and_dropped_volumes_warn() -> None:
    """container_name and hostname are ignored, an anonymous volume dropped: warnings only."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    container_name: web1\n    hostname: w\n"
        "    volumes: [/var/cache]\n"
    )
    assert result.problems == []
    assert [w.message for w in result.warnings] == [
        "services.web.container_name: ignored by trueup",
        "services.web.hostname: ignored by trueup",
        "services.web.volumes[0]: anonymous volume dropped: trueup keeps no data it cannot "
        "name; use a named volume",
    ]
    assert result.apps[0].app.spec.volumes == []


def test_repo_paths_are_read_only_files_inside_the_repository() -> None:
    """A relative bind is a read-only file of the repo; writable or escaping ones are errors."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    volumes:\n"
        "      - ./conf/nginx.conf:/etc/nginx/nginx.conf:ro\n"
        "      - ./data:/data\n"
        "      - ../../../etc/passwd:/x:ro\n"
    )
    assert [p.line for p in result.problems] == [6, 7]
    assert "use a named volume for data it writes" in result.problems[0].message
    assert "leaves the repository" in result.problems[1].message
    result = _load(
        "services:\n  web:\n    image: nginx\n"
        "    volumes: ['./conf/nginx.conf:/etc/nginx/nginx.conf:ro', '../shared:/s:ro']\n"
    )
    files = [(f.path, f.source) for f in result.apps[0].app.spec.files]
    assert files == [("/etc/nginx/nginx.conf", "apps/shop/conf/nginx.conf"), ("/s", "apps/shared")]


def test_project_and_app_names() -> None:
    """The project is named by ``name:`` (normalised as Compose does) or the folder; app
    names are ``<project>-<service>`` and must be DNS labels; volumes ``<project>_<key>``."""
    result = _load(
        "name: Shop.Front\nservices: {web: {image: nginx, volumes: [d:/d]}}\nvolumes: {d: }\n"
    )
    assert result.project == "shopfront"
    (app,) = result.apps
    assert app.app.name == "shopfront-web"
    assert app.app.spec.volumes[0].volume_name == "shopfront_d"
    assert [n.model_dump() for n in app.app.spec.networks or []] == [
        {"name": "shopfront-default", "aliases": ["web"]}
    ]


@pytest.mark.parametrize(
    ("text", "file", "message"),
    [
        (
            "services: {web: {image: nginx}}\n",
            "compose.yaml",
            "a compose file at the top of the deployment has no folder to name its project "
            "after: give it a top-level name:",
        ),
        (
            "name: my_shop\nservices: {web: {image: nginx}}\n",
            FILE,
            "name: project name 'my_shop' cannot begin app names (<project>-<service>, DNS "
            "labels: a-z, 0-9 and '-', at most 63 characters): set name:, e.g. 'my-shop'",
        ),
        (
            "services: {api_v2: {image: nginx}}\n",
            FILE,
            "services.api_v2: app name 'shop-api_v2' (<project>-<service>) is not a DNS label: "
            "use a-z, 0-9 and '-' in the service name, the whole at most 63 characters",
        ),
        (
            f"services: {{{'s' * 60}: {{image: nginx}}}}\n",
            FILE,
            f"services.{'s' * 60}: app name 'shop-{'s' * 60}' (<project>-<service>) is not a DNS "
            "label: use a-z, 0-9 and '-' in the service name, the whole at most 63 characters",
        ),
    ],
    ids=["root-folder", "underscore-project", "underscore-service", "too-long"],
)
def test_names_that_cannot_be_app_names_are_located_errors(
    text: str, file: str, message: str
) -> None:
    """Each naming failure is one located problem; no app comes out of it."""
    result = _load(text, file)
    assert [p.message for p in result.problems] == [message]
    assert result.apps == []


def test_profiles_deploy_a_service_only_when_active() -> None:
    """Default: no profile is active, so a service with profiles is not deployed; a service
    depending on it is an error unless its profile is active."""
    text = (
        "services:\n  web: {image: nginx}\n  debug: {image: busybox, profiles: [debug]}\n"
        "  tools: {image: busybox, profiles: [debug, ops], depends_on: [debug]}\n"
    )
    assert [a.service for a in _load(text).apps] == ["web"]
    active = _load(text, profiles=frozenset({"debug"}))
    assert [a.service for a in active.apps] == ["web", "debug", "tools"]
    ops = _load(text, profiles=frozenset({"ops"}))
    assert [p.message for p in ops.problems] == [
        "services.tools.depends_on[0]: depends on a service whose profiles are not active"
    ]


def test_x_trueup_is_validated_by_the_manifest_models() -> None:
    """Routes, update, reload and suspend under x-trueup: errors read as in a manifest, at
    the x-trueup line; a route may name its port by number."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n    x-trueup:\n"
        "      routes: [{host: 'bad host', port: 80}]\n"  # 6
        "      update: {strategy: sideways}\n"  # 7
        "      reload: {signal: SIGNOPE}\n"  # 8
        "      suspnd: true\n"  # 9
    )
    assert [(p.line, p.message) for p in result.problems] == [
        (6, "services.web.x-trueup.routes[0].host: 'bad host' is not a valid host name"),
        (7, "services.web.x-trueup.update.strategy: must be one of 'start-first' or 'stop-first'"),
        (
            8,
            "services.web.x-trueup.reload.signal: 'SIGNOPE' is not a signal name (e.g. SIGTERM, "
            "SIGINT, SIGQUIT)",
        ),
        (9, "services.web.x-trueup.suspnd: unknown key; did you mean 'suspend'?"),
    ]
    good = _load(
        "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n    x-trueup:\n"
        "      routes: [{host: shop.example.com, port: 80}]\n      update: {strategy: stop-first}\n"
    )
    (app,) = good.apps
    assert [(r.host, r.port) for r in app.app.spec.routes] == [("shop.example.com", "tcp-80")]
    assert app.locate(("spec", "routes", 0, "host")).line == 6
    assert app.locate(("spec", "image")).line == 3
    assert app.locate(("spec", "replicas")) == app.locate(())


def test_deploy_endpoint_mode_is_the_swarm_endpoint_mode() -> None:
    """Compose's ``deploy.endpoint_mode`` sets ``spec.swarm.endpointMode`` (located there);
    a value that is neither ``vip`` nor ``dnsrr`` is a located error of that service alone."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    deploy: {endpoint_mode: dnsrr}\n"
        "  api:\n    image: nginx\n    deploy:\n      endpoint_mode: round-robin\n"  # 8
        "  db:\n    image: postgres\n"
    )
    assert [(p.line, p.column, p.message) for p in result.problems] == [
        (
            8,
            22,
            "services.api.deploy.endpoint_mode: 'round-robin' is not an endpoint mode (vip, dnsrr)",
        )
    ]
    apps = {a.service: a for a in result.apps}
    assert sorted(apps) == ["db", "web"]
    swarm = apps["web"].app.spec.swarm
    assert swarm is not None and swarm.endpoint_mode == "dnsrr"
    assert apps["web"].locate(("spec", "swarm", "endpointMode")).line == 4
    assert apps["db"].app.spec.swarm is None


def test_service_healthy_waits_for_a_health_check() -> None:
    """``service_healthy`` becomes dependsOn (trueup starts a dependent once its dependency
    is healthy); on a dependency without a health check it is an error."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    depends_on:\n"
        "      db: {condition: service_healthy}\n      cache: {condition: service_healthy}\n"
        "  db: {image: postgres, healthcheck: {test: [CMD, pg_isready]}}\n"
        "  cache: {image: redis}\n"
    )
    assert [(p.line, p.message) for p in result.problems] == [
        (
            6,
            "services.web.depends_on.cache.condition: service_healthy needs a healthcheck on "
            "'cache', and it has none",
        )
    ]
    assert sorted(a.service for a in result.apps) == ["cache", "db"]


def test_secrets_come_from_the_host_unless_repo_secrets_are_allowed() -> None:
    """A ``file:`` secret reads the host's secrets dir under its name (with a warning that the
    committed file is not read), or the committed file when the controller allows it."""
    text = (
        "services:\n  web: {image: nginx, secrets: [db_pw]}\n"
        "secrets:\n  db_pw: {file: ./secrets/db_pw.txt}\n  env_pw: {environment: PW}\n"
    )
    result = _load(text)
    assert [p.message for p in result.problems] == [
        "secrets.env_pw.environment: not supported by trueup"
    ]
    (entry,) = result.apps[0].app.spec.files
    assert (entry.path, entry.secret_file, entry.source) == ("/run/secrets/db_pw", "db_pw", None)
    assert entry.effective_mode() == 0o444  # as Compose: a service's non-root user reads it
    assert "host's secrets dir" in result.warnings[0].message
    allowed = _load(text, allow_repo_secrets=True)
    (entry,) = allowed.apps[0].app.spec.files
    assert (entry.secret_file, entry.source) == (None, "apps/shop/secrets/db_pw.txt")
    assert allowed.warnings == []


def test_inline_configs_and_env_files() -> None:
    """A ``content:`` config is an inline file; ``env_file`` becomes ``envFrom`` (repo paths)."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    configs: [motd]\n"
        "    env_file: [./web.env, {path: ../common.env}]\n"
        "configs:\n  motd: {content: 'hello'}\n"
    )
    spec = result.apps[0].app.spec
    assert [(f.path, f.content) for f in spec.files] == [("/motd", "hello")]
    assert [e.file for e in spec.env_from] == ["apps/shop/web.env", "apps/common.env"]


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_hostile_yaml_is_a_located_problem(value: str) -> None:
    """Every hostile value of the manifest corpus is a located problem here too, no raise."""
    result = _load(f"services:\n  web:\n    image: nginx\n    user: {value}\n")
    assert result.problems, value
    assert result.problems[0].line == 4, str(result.problems[0])
    assert result.apps == []


@pytest.mark.parametrize(
    "text",
    [BOMB, MERGE_BOMB, LONG_STRING_BOMB, "- " * 200_000 + "x\n", b"\xff\xfe".decode("latin-1")],
    ids=["aliases", "merges", "long-string", "block-nesting", "not-utf8"],
)
def test_bombs_and_garbage_are_one_problem(text: str) -> None:
    """Bombs, deep nesting and garbage: a single problem for the file, quickly."""
    raw = text.encode("latin-1") if text.startswith("\xff") else text.encode()
    result = load_project(FILE, raw, dotenv=None, variables={})
    assert len(result.problems) >= 1
    assert result.apps == []


def test_not_a_compose_file_is_one_problem() -> None:
    """A list, two documents, or no services: one located problem each."""
    assert [p.message for p in _load("- a\n").problems] == [
        "a compose file must be a mapping with services:"
    ]
    assert [p.line for p in _load("services: {a: {image: x}}\n---\nb: 1\n").problems] == [3]
    assert [p.message for p in _load("name: x\n").problems] == ["a compose file needs services:"]


def test_a_duplicate_key_or_a_service_that_is_no_mapping_fails_that_service() -> None:
    """Both are located problems; the service is left running as it is, the others apply."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    image: httpd\n  api: [oops]\n"
        "  db: {image: postgres}\n"
    )
    assert [(p.line, p.message) for p in result.problems] == [
        (4, "services.web.image: key appears twice in this mapping"),
        (5, "services.api: must be a mapping"),
    ]
    assert [a.service for a in result.apps] == ["db"]
    assert result.invalid_apps == {"shop-web", "shop-api"}


def test_plain_scalars_read_as_compose_reads_them() -> None:
    """YAML 1.2's core schema, as Compose: ``22:22`` is a port mapping (not 1342, base 60),
    ``yes``/``on`` stay text, ``restart: no`` is the policy."""
    result = _load(
        "services:\n  web:\n    image: nginx\n    ports: [22:22]\n    restart: no\n"
        "    environment: {A: yes, B: on}\n"
    )
    (app,) = result.apps
    spec = app.app.spec
    assert [(p.container_port, p.host_port) for p in spec.ports] == [(22, 22)]
    assert spec.restart_policy == "never"
    assert spec.env == {"A": "yes", "B": "on"}


def test_a_service_using_a_broken_declaration_fails_with_it() -> None:
    """A volume with a driver trueup does not support is not made without it: the services
    that use it fail (pointing at the declaration), the others apply."""
    result = _load(
        "networks: {back: {name: custom}, front: {external: false}}\n"
        "volumes: {data: {driver: nfs}}\n"
        "secrets: {pw: {environment: PW}}\n"
        "services:\n"
        "  web: {image: nginx, networks: [back, front]}\n"  # 5
        "  db: {image: postgres, volumes: ['data:/var/lib/postgresql/data']}\n"  # 6
        "  api: {image: busybox, secrets: [pw]}\n"  # 7
        "  ok: {image: busybox, networks: [front]}\n"
    )
    assert [(p.line, p.message) for p in result.problems] == [
        (1, "networks.back.name: not supported by trueup"),
        (2, "volumes.data.driver: not supported by trueup"),
        (3, "secrets.pw.environment: not supported by trueup"),
        (
            5,
            "services.web.networks[0]: network 'back' has a problem where it is declared "
            "(see there)",
        ),
        (6, "services.db.volumes[0]: volume 'data' has a problem where it is declared (see there)"),
        (7, "services.api.secrets[0]: secret 'pw' has a problem where it is declared (see there)"),
    ]
    assert [a.service for a in result.apps] == ["ok"]
    assert result.invalid_apps == {"shop-web", "shop-db", "shop-api"}
