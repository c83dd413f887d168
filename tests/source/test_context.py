"""Build contexts: a tar made from git objects equals what `git archive` gives for the folder.

The oracle is independent of our code: `git archive` of the folder, unpacked, filtered with the
docker SDK's own `exclude_paths` (what `docker build` would send from that folder on disk).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from controller.errors import SourceError
from controller.source import GitSource
from tests.gitutil import commit_files, git, make_repo

CONTEXT_FILES = {
    "svc/Dockerfile": "FROM busybox:1.36\nCOPY . /app\n",
    "svc/Dockerfile.dev": "FROM busybox\n",
    "svc/.dockerignore": "# comment\n*.log\ntmp/\ndocs\n!docs/keep.md\nsecret*\nDockerfile*\n",
    "svc/app.log": "noise\n",
    "svc/sub/app.log": "kept: *.log matches only at the top\n",
    "svc/tmp/scratch.txt": "x\n",
    "svc/docs/a.md": "a\n",
    "svc/docs/keep.md": "keep\n",
    "svc/secret.txt": "s\n",
    "svc/www/index.html": "<h1>hi</h1>\n",
    "svc/www/deep/er/file.txt": "deep\n",
    "svc/run.sh": "#!/bin/sh\necho hi\n",
    "other/outside.txt": "not in the context\n",
}


def members(data: bytes) -> dict[str, tuple[str, int, str, bytes]]:
    """name -> (kind, permission bits, link target, content) for every entry of a tar."""
    out: dict[str, tuple[str, int, str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if m.isdir():
                kind = "dir"
            elif m.issym():
                kind = "symlink"
            elif m.isfile():
                kind = "file"
            else:
                kind = f"other:{m.type!r}"
            extracted = tar.extractfile(m) if m.isfile() else None
            content = extracted.read() if extracted else b""
            out[m.name.rstrip("/")] = (kind, m.mode & 0o7777, m.linkname, content)
    return out


@pytest.fixture
def context_repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    make_repo(path, CONTEXT_FILES)
    (path / "svc/run.sh").chmod(0o755)
    os.symlink("www/index.html", path / "svc/index-link.html")
    os.symlink("../../../../etc/passwd", path / "svc/escape")
    os.symlink("www", path / "svc/www-link")
    commit_files(path, {}, "modes and links")
    return path


def git_archive_minus_dockerignore(repo: Path, folder: str, tmp_path: Path) -> bytes:
    """What `git archive` gives for ``folder``, restricted to what the docker SDK would send."""
    archive = subprocess.run(
        ["git", "-c", "tar.umask=0022", "archive", "--format=tar", f"HEAD:{folder}"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(unpacked, filter="fully_trusted")  # our own archive, in a temp folder
    ignore = unpacked / ".dockerignore"
    patterns = []
    if ignore.exists():
        lines = (line.strip() for line in ignore.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    kept = exclude_paths(str(unpacked), patterns, dockerfile="Dockerfile")
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as src,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        for m in src.getmembers():
            if m.name.rstrip("/") in kept:
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return out.getvalue()


def test_tar_equals_git_archive_minus_dockerignored(context_repo: Path, tmp_path: Path) -> None:
    """File for file, mode for mode and symlink for symlink, the tar matches git archive."""
    with GitSource(str(context_repo), state_dir=tmp_path / "state") as source:
        context = source.build_context(source.fetch().sha, "svc")
    ours = members(context.tar)
    expected = members(git_archive_minus_dockerignore(context_repo, "svc", tmp_path))
    assert ours == expected
    # the interesting cases, spelled out
    assert ours["run.sh"][:2] == ("file", 0o755)
    assert ours["www/index.html"][:2] == ("file", 0o644)
    assert ours["index-link.html"][:3] == ("symlink", 0o777, "www/index.html")
    assert ours["escape"][2] == "../../../../etc/passwd"
    assert "Dockerfile" in ours and ".dockerignore" in ours
    assert "docs/keep.md" in ours and "sub/app.log" in ours
    for gone in ("app.log", "tmp/scratch.txt", "docs/a.md", "secret.txt", "Dockerfile.dev"):
        assert gone not in ours
    assert context.tree_id == git(context_repo, "rev-parse", "HEAD:svc")


def test_tar_without_dockerignore_is_the_whole_folder(context_repo: Path, tmp_path: Path) -> None:
    """With no .dockerignore the tar is exactly git archive of the folder."""
    with GitSource(str(context_repo), state_dir=tmp_path / "state") as source:
        context = source.build_context(source.fetch().sha, "other")
    assert members(context.tar) == members(
        git_archive_minus_dockerignore(context_repo, "other", tmp_path)
    )


def test_same_tree_gives_identical_tar_bytes(context_repo: Path, tmp_path: Path) -> None:
    """A commit outside the context keeps its tree id and yields byte-identical tar."""
    with GitSource(str(context_repo), state_dir=tmp_path / "state") as source:
        one = source.build_context(source.fetch().sha, "svc")
        commit_files(context_repo, {"other/outside.txt": "changed\n"}, "outside")
        two = source.build_context(source.fetch().sha, "svc")
        commit_files(context_repo, {"svc/www/index.html": "<h1>v2</h1>\n"}, "inside")
        three = source.build_context(source.fetch().sha, "svc")
    assert one.tree_id == two.tree_id and one.tar == two.tar
    assert three.tree_id != one.tree_id
    assert members(three.tar)["www/index.html"][3] == b"<h1>v2</h1>\n"


def test_dockerfile_elsewhere_is_never_ignored(context_repo: Path, tmp_path: Path) -> None:
    """A non-default Dockerfile name survives a .dockerignore pattern that matches it."""
    with GitSource(str(context_repo), state_dir=tmp_path / "state") as source:
        sha = source.fetch().sha
        default = members(source.build_context(sha, "svc").tar)
        dev = members(source.build_context(sha, "svc", dockerfile="Dockerfile.dev").tar)
    assert "Dockerfile.dev" not in default
    assert "Dockerfile.dev" in dev


def test_submodule_in_context_is_an_empty_folder(tmp_path: Path) -> None:
    """A submodule inside a build context becomes an empty folder, as in git archive."""
    lib = tmp_path / "lib"
    make_repo(lib, {"lib.txt": "lib\n"})
    repo = tmp_path / "repo"
    make_repo(repo, {"svc/Dockerfile": "FROM busybox\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "svc/lib")
    git(repo, "commit", "-q", "-m", "submodule")
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        ours = members(source.build_context(source.fetch().sha, "svc").tar)
    assert ours == members(git_archive_minus_dockerignore(repo, "svc", tmp_path))
    assert ours["lib"][0] == "dir"


def test_context_must_stay_inside_the_deployment_root(context_repo: Path, tmp_path: Path) -> None:
    """`..`, absolute paths, missing folders and files are refused with SourceError."""
    with GitSource(str(context_repo), state_dir=tmp_path / "state") as source:
        sha = source.fetch().sha
        for bad in ("../svc", "/svc", "svc/../../x", "missing", "svc/run.sh"):
            with pytest.raises(SourceError):
                source.build_context(sha, bad)


def test_context_id_is_the_tree_id_without_packing(tmp_path: Path) -> None:
    """context_id names the same tree as build_context, and changes only with the folder."""
    repo = tmp_path / "repo"
    first = make_repo(repo, {"svc/Dockerfile": "FROM x\n", "README.md": "a\n"})
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        assert source.context_id(first, "svc") == source.build_context(first, "svc").tree_id
        second = commit_files(repo, {"README.md": "b\n"}, "docs")
        assert source.context_id(second, "svc") == source.context_id(first, "svc")
        third = commit_files(repo, {"svc/Dockerfile": "FROM y\n"}, "svc")
        assert source.context_id(third, "svc") != source.context_id(first, "svc")
