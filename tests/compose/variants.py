"""Compose files made from a fixed seed: each picks a few service keys and top-level entries
from a table of right and wrong values (the kinds of mistakes people make: a number where a
string goes, a missing mapping, an undeclared name, a bad unit). The differential test runs
the reference on each and checks that trueup refuses every file the reference refuses."""

from __future__ import annotations

import random
from typing import Any

SERVICE: dict[str, list[Any]] = {
    "image": ["nginx", 1, ["x"]],
    "command": ["echo hi", ["echo", "hi"], [1], {"a": 1}],
    "entrypoint": ["/bin/sh -c", [], 5],
    "environment": [{"A": "1"}, ["A=1", "B"], {"A": None}, [{"A": 1}], "A=1", {"A": [1]}, [1]],
    "ports": [
        ["80"],
        ["80:80"],
        [80],
        [{"target": 80}],
        [{"published": 80}],
        "80",
        ["65536:80"],
        ["a"],
        [{"target": 80, "published": "x"}],
        [{"target": 80, "host_ip": "bad"}],
    ],
    "expose": [["80"], [80], ["80-81"], "80", [{"a": 1}]],
    "restart": ["always", "no", "on-failure:3", 1, ["x"]],
    "healthcheck": [
        {"test": ["CMD", "x"]},
        {"test": "x"},
        {"test": ["NONE"]},
        {"disable": True},
        {"test": "x", "interval": "5"},
        {"test": "x", "retries": "x"},
        {"test": [1]},
        {"test": "x", "disable": "x"},
    ],
    "depends_on": [
        ["db"],
        {"db": {"condition": "service_healthy"}},
        {"db": None},
        ["nope"],
        {"db": {"condition": "bogus"}},
        "db",
        [1],
    ],
    "deploy": [
        {"replicas": 2},
        {"replicas": "x"},
        {"resources": {"limits": {"memory": "1g"}}},
        {"resources": {"limits": {"memory": "x"}}},
        {"bogus": 1},
        {"replicas": 1.5},
    ],
    "mem_limit": ["1g", 1024 * 1024 * 64, "1.5G", "x"],
    "cpus": [0.5, "0.5", "x"],
    "user": ["1000", 1000],
    "init": [True, "x", 1],
    "stop_grace_period": ["10s", "1m30s", "x", 10],
    "labels": [{"a": "b"}, ["a=b"], "a=b", {"a": [1]}],
    "cap_add": [["NET_ADMIN"], "NET_ADMIN", [1]],
    "privileged": [True, "x"],
    "networks": [["default"], ["nope"], {"default": None}, {"default": {"aliases": ["x"]}}, "x"],
    "volumes": [
        ["data:/d"],
        ["./x:/x:ro"],
        ["/abs:/abs"],
        ["nope:/d"],
        ["a:b:c:d"],
        "data:/d",
        [{"type": "volume", "source": "data", "target": "/d"}],
        [{"source": "data"}],
        [{"type": "bind", "target": "/x"}],
        [{"type": "bogus", "target": "/x"}],
    ],
    "secrets": [["pw"], ["nope"], [{"source": "pw", "target": "x"}], "pw", [{"target": "/x"}]],
    "configs": [["conf"], ["nope"], [{"source": "conf"}]],
    "build": [
        ".",
        {"context": "."},
        {"context": ".", "args": ["A=1"]},
        1,
        {"bogus": 1},
        {"context": ".", "target": 1},
    ],
    "profiles": [["a"], "a"],
    "env_file": [["e.env"], "e.env", [1]],
    "scale": [2, "x"],
    "container_name": ["web-1", 1, "x"],
    "hostname": ["h", 5],
}
TOP: dict[str, list[Any]] = {
    "volumes": [
        {"data": {}},
        {"data": None},
        {"data": {"external": True}},
        {"data": {"external": "x"}},
        ["data"],
    ],
    "networks": [{"back": {}}, {"back": None}, ["back"]],
    "secrets": [
        {"pw": {"file": "./pw"}},
        {"pw": {}},
        {"pw": None},
        {"pw": {"file": "./pw", "x": 1}},
    ],
    "configs": [{"conf": {"file": "./c"}}, {"conf": {"content": "x"}}, {"conf": {}}],
    "name": ["proj", "Proj", 1],
    "version": ["3.8", 3],
}
FILES = ("pw", "c", "e.env")  # what the variants refer to, for the reference to find


def variants(seed: int, count: int) -> list[dict[str, Any]]:
    """``count`` compose files (as data), the same ones for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        web = {k: rng.choice(SERVICE[k]) for k in rng.sample(sorted(SERVICE), rng.randint(1, 3))}
        if "image" not in web and "build" not in web:
            web["image"] = "busybox"
        data: dict[str, Any] = {
            "services": {"web": web, "db": {"image": "pg", "healthcheck": {"test": ["CMD", "x"]}}},
            "volumes": {"data": {}},
            "secrets": {"pw": {"file": "./pw"}},
            "configs": {"conf": {"file": "./c"}},
        }
        for key in rng.sample(sorted(TOP), rng.randint(0, 1)):
            data[key] = rng.choice(TOP[key])
        out.append(data)
    return out
