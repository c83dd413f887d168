"""Compose projects for the conformance tests: realistic files (as the survey of public
projects found them) covering every key trueup maps, and broken files the reference
implementation rejects, each with the line trueup must point at (``# <-`` marks it).

Each project is a folder of files; ``variables`` play the host's variables file (the
oracle gets them as its environment, where Compose reads the shell).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    files: dict[str, str]
    compose: str = "compose.yaml"
    variables: dict[str, str] = field(default_factory=dict)


SHOP = Case(
    {
        "compose.yaml": """\
name: shop
services:
  web:
    build:
      context: ./web
      dockerfile: Dockerfile.prod
      target: runtime
      args:
        - VERSION=${VERSION}
        - DEBUG
    command: gunicorn -b 0.0.0.0:8000 'app:create_app()'
    environment:
      - DATABASE_URL=postgres://shop@db/shop
      - REDIS_URL=redis://cache:6379/0
      - LOG_LEVEL=${LOG_LEVEL:-info}
    ports:
      - "8000:8000"
    restart: unless-stopped
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
    volumes:
      - ./conf/gunicorn.conf.py:/etc/gunicorn.conf.py:ro
      - media:/srv/media
    networks: [front, back]
    secrets: [db_password]
    deploy:
      resources:
        limits:
          memory: 1.5G
  db:
    image: postgres:${PG_VERSION}
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U $$POSTGRES_USER"]
      interval: 10s
      timeout: 5s
      retries: 5
      start_period: 1m30s
    volumes:
      - pgdata:/var/lib/postgresql/data
    networks: [back]
    secrets: [db_password]
    restart: always
  cache:
    image: redis:7-alpine
    command: ["redis-server", "--appendonly", "yes"]
    volumes:
      - cache:/data
    networks: [back]
    restart: "no"
volumes:
  pgdata: {}
  media:
  cache:
networks:
  front: {}
  back: {}
secrets:
  db_password:
    file: ./secrets/db_password.txt
""",
        ".env": "VERSION=1.4.2\nPG_VERSION=16\n",
        "web/Dockerfile.prod": "FROM busybox\n",
        "conf/gunicorn.conf.py": "workers = 2\n",
        "secrets/db_password.txt": "s3cret\n",
    },
    variables={"LOG_LEVEL": "warning", "DEBUG": "1"},
)

PORTS = Case(
    {
        "edge/compose.yaml": """\
services:
  edge:
    image: caddy:2
    ports:
      - 80
      - "443:443"
      - 22:22
      - "127.0.0.1:8080:80"
      - "[::1]:8081:81"
      - "53:53/udp"
      - "9000-9002:9000-9002"
      - target: 2019
        published: "2019"
        host_ip: 127.0.0.1
        protocol: tcp
        mode: host
      - target: 5353
        published: 15353
        protocol: udp
    expose:
      - "3000"
      - 4000
""",
    },
    compose="edge/compose.yaml",
)

HEALTH = Case(
    {
        "stack/compose.yml": """\
services:
  cmd:
    image: busybox:1.36
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/"]
      interval: 500ms
      timeout: 1s
  shell:
    image: busybox:1.36
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready && echo $$HOSTNAME"]
      interval: 1m30s
      retries: 10
  string:
    image: busybox:1.36
    healthcheck:
      test: curl -fsS http://localhost/ || exit 1
      start_period: 2m
  none:
    image: busybox:1.36
    healthcheck:
      test: ["NONE"]
  disabled:
    image: busybox:1.36
    healthcheck:
      disable: true
""",
    },
    compose="stack/compose.yml",
)

INTERPOLATION = Case(
    {
        "app/docker-compose.yml": """\
name: ${PROJECT:-interp}
services:
  api:
    image: ${REGISTRY}/api:$TAG
    environment:
      A: ${UNSET:-fallback}
      B: ${EMPTY-kept-empty}
      C: ${EMPTY:-used}
      D: ${TAG:+tagged}
      E: ${UNSET+never}
      F: "literal $$HOME and $$$${TAG}"
      G: "${UNSET:-${TAG}-nested}"
      H: "price: 5 $ or $1"
      I: ${FROM_HOST}
      J: ${DERIVED}
    command: echo "${GREETING}"
    deploy: {replicas: "${REPLICAS:-2}"}
    init: ${INIT:-yes}
    stop_grace_period: ${GRACE:-45s}
""",
        "app/.env": (
            "# committed defaults\nREGISTRY=registry.example.com\nTAG=1.0\nEMPTY=\n"
            "GREETING='hello world'\nFROM_HOST=from-dotenv\nDERIVED=\"${TAG}/${FROM_HOST}\"\n"
        ),
    },
    compose="app/docker-compose.yml",
    variables={"FROM_HOST": "from-host"},
)

PROCESS = Case(
    {
        "backend/compose.yaml": """\
services:
  worker:
    build: ./worker
    entrypoint: /docker-entrypoint.sh --mode "worker pool"
    command: ["--concurrency", "4"]
    environment:
      WORKERS: 4
      RATIO: 1.0
      SHARE: 0.25
      OCTAL: 010
      FEATURE: yes
      MODE: on
      BIG: 1e3
      VERBOSE: "true"
      EMPTY: ""
    env_file:
      - ./worker.env
    user: "1000:1000"
    working_dir: /srv/app
    init: true
    stop_signal: SIGINT
    stop_grace_period: 1m30s
    labels:
      com.example.role: worker
      com.example.tier: backend
    cap_add: [NET_ADMIN, CAP_SYS_TIME]
    mem_limit: 512m
    cpus: 0.5
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
    restart: on-failure:5
  metrics:
    image: prom/node-exporter
    network_mode: host
    privileged: true
    labels: ["com.example.role=metrics", "com.example.flag"]
    volumes:
      - /proc:/host/proc:ro
      - type: bind
        source: /sys
        target: /host/sys
        read_only: true
    restart: always
""",
        "backend/worker/Dockerfile": "FROM busybox\n",
        "backend/worker.env": "QUEUE=default\nWORKERS=2\n",
    },
    compose="backend/compose.yaml",
)

FILES = Case(
    {
        "compose.yaml": """\
name: files
services:
  proxy:
    image: nginx:1.27
    configs:
      - source: nginx_conf
        target: /etc/nginx/nginx.conf
      - banner
    secrets:
      - tls_key
      - source: tls_cert
        target: server.crt
        uid: "101"
        gid: "101"
        mode: 0440
    volumes:
      - type: bind
        source: ./site
        target: /usr/share/nginx/html
        read_only: true
      - type: volume
        source: cache
        target: /var/cache/nginx
      - shared:/shared:ro
    depends_on: [app]
  app:
    image: busybox:1.36
    volumes:
      - shared:/shared
configs:
  nginx_conf:
    file: ./nginx/nginx.conf
  banner:
    content: |
      welcome to $${HOSTNAME}
secrets:
  tls_key:
    file: ./certs/tls.key
  tls_cert:
    file: ./certs/tls.crt
volumes:
  cache: {}
  shared:
    external: true
""",
        "nginx/nginx.conf": "events {}\n",
        "site/index.html": "<h1>hi</h1>\n",
        "certs/tls.key": "key\n",
        "certs/tls.crt": "crt\n",
    }
)

COMMANDS = Case(
    {
        "cmds/compose.yaml": """\
services:
  quotes:
    image: busybox:1.36
    command: sh -c 'echo "a b" c'
  escapes:
    image: busybox:1.36
    command: echo a\\ b "c\\"d" 'e\\f'
  empties:
    image: busybox:1.36
    command: "printf '' \\"\\" x"
  spaces:
    image: busybox:1.36
    entrypoint: "  /bin/sh\\t-c  "
    command: ["x"]
  glued:
    image: busybox:1.36
    command: a"b c"'d e'f
""",
    },
    compose="cmds/compose.yaml",
)

CONFORMING = {
    "commands": COMMANDS,
    "shop": SHOP,
    "ports": PORTS,
    "health": HEALTH,
    "interpolation": INTERPOLATION,
    "process": PROCESS,
    "files": FILES,
}

_HEAD = "services:\n  web:\n    image: busybox:1.36\n"

# Files the oracle rejects. The line marked `# <-` is where trueup must report a problem.
BROKEN = {
    "unknown-key": _HEAD + "    restat: always  # <-\n",
    "undefined-dependency": _HEAD + "    depends_on: [db]  # <-\n",
    "undefined-volume": _HEAD + "    volumes: [data:/data]  # <-\n",
    "undefined-network": _HEAD + "    networks: [back]  # <-\n",
    "undefined-secret": _HEAD + "    secrets: [pw]  # <-\n",
    "no-image-no-build": "services:\n  web:  # <-\n    command: [true]\n",
    "bad-duration": _HEAD
    + "    healthcheck:\n      test: [CMD, 'true']\n      interval: 5 seconds  # <-\n",
    "bad-port": _HEAD + "    ports: ['80:80:80:80']  # <-\n",
    "required-variable": _HEAD + "    environment: {A: '${A:?set A first}'}  # <-\n",
    "user-not-string": _HEAD + "    user: 1000  # <-\n",
    "distinct-memory": _HEAD
    + "    mem_limit: 1g  # <-\n    deploy: {resources: {limits: {memory: 2g}}}\n",
    "bad-restart-type": _HEAD + "    restart: [always]  # <-\n",
    "ports-not-list": _HEAD + "    ports: '80:80'  # <-\n",
    "unterminated-brace": _HEAD + "    environment: {A: '${A'}  # <-\n",
    "services-not-mapping": "services: [web]  # <-\n",
    "unknown-top-level": _HEAD + "servces: {}  # <-\n",
    "dependency-cycle": _HEAD + "    depends_on: [db]  # <-\n  db: {image: x, depends_on: [web]}\n",
    "self-dependency": _HEAD + "    depends_on: [web]  # <-\n",
    "undefined-config": _HEAD + "    configs: [conf]  # <-\n",
    "bad-healthcheck-test": _HEAD + "    healthcheck: {test: [BOGUS, x]}  # <-\n",
    "negative-replicas": _HEAD + "    deploy: {replicas: -1}  # <-\n",
    "endpoint-mode-not-string": _HEAD + "    deploy: {endpoint_mode: 3}  # <-\n",
    "cap-add-not-list": _HEAD + "    cap_add: NET_ADMIN  # <-\n",
    "label-not-scalar": _HEAD + "    labels: {a: [1]}  # <-\n",
    "scale-and-replicas": _HEAD + "    scale: 2  # <-\n    deploy: {replicas: 3}\n",
    "network-mode-and-networks": _HEAD
    + "    network_mode: bridge\n    networks: [default]  # <-\n",
    "bad-stop-grace-period": _HEAD + "    stop_grace_period: 10 s  # <-\n",
    "bad-memory": _HEAD + "    mem_limit: lots  # <-\n",
    "dependency-without-mapping": _HEAD + "    depends_on:\n      db:  # <-\n  db: {image: x}\n",
    "command-item-not-string": _HEAD + "    command: [sleep, 1]  # <-\n",
    "duration-not-string": _HEAD + "    stop_grace_period: 10  # <-\n",
    "image-not-string": "services:\n  web:\n    image: 1  # <-\n",
    "container-name": _HEAD + "    container_name: x  # <-\n",
    "hostname-not-string": _HEAD + "    hostname: 5  # <-\n",
    "version-not-string": "version: 3  # <-\n" + _HEAD,
    "volume-without-type": _HEAD
    + "    volumes: [{source: d, target: /d}]  # <-\nvolumes: {d: {}}\n",
}
