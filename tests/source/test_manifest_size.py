"""A manifest file past the loader's 1 MiB limit is refused by its size alone: its blob (or
file on disk) is never read into memory, whether the object is loose, packed or a delta."""

from __future__ import annotations

from pathlib import Path

import pytest
from dulwich.object_store import DiskObjectStore

from controller.manifests.loader import MAX_FILE_BYTES, load_files
from controller.source import GitSource, read_worktree
from controller.source.tree import MAX_MANIFEST_BYTES, OVERSIZED, blob_size
from tests.gitutil import commit_files, git, make_repo

SMALL = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {image: busybox:1.36}\n"
BIG = "# padding\n" * 220_000  # 2.2 MB


def test_the_source_and_the_loader_agree_on_the_limit() -> None:
    """The size the source refuses unread is exactly the size the loader refuses."""
    assert MAX_MANIFEST_BYTES == MAX_FILE_BYTES
    assert len(OVERSIZED) == MAX_FILE_BYTES + 1


@pytest.mark.parametrize("storage", ["loose", "packed", "delta"])
def test_huge_manifest_blob_is_never_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str
) -> None:
    """The loader reports the huge file as too large, the small one loads, and the huge blob
    is never read from the object store."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": SMALL, "apps/big.yaml": BIG})
    if storage == "delta":
        commit_files(repo, {"apps/big.yaml": BIG + "# one more line\n"}, "grow")
    if storage != "loose":
        git(repo, "gc", "-q", "--aggressive")
    big = git(repo, "rev-parse", "HEAD:apps/big.yaml").encode()
    assert int(git(repo, "cat-file", "-s", big.decode())) > MAX_FILE_BYTES

    read: list[bytes] = []
    original = DiskObjectStore.__getitem__

    def spy(self: DiskObjectStore, sha: bytes) -> object:
        read.append(sha)
        return original(self, sha)

    monkeypatch.setattr(DiskObjectStore, "__getitem__", spy)
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        sha = source.fetch().sha
        files = source.manifest_files(sha, "apps")
        single = source.manifest_files(sha, "apps/big.yaml")
        store = source._require_repo().object_store
        revs = ["HEAD", "HEAD~1"] if storage == "delta" else ["HEAD"]  # one of them is a delta
        for rev in revs:
            oid = git(repo, "rev-parse", f"{rev}:apps/big.yaml")
            assert blob_size(store, oid.encode()) == int(git(repo, "cat-file", "-s", oid))
    assert big not in read
    assert files.files["apps/big.yaml"] is OVERSIZED
    assert single.files["apps/big.yaml"] is OVERSIZED
    result = load_files(files.files)
    assert [str(p) for p in result.problems] == ["apps/big.yaml:1:1: file is larger than 1024 KiB"]
    assert list(result.apps) == ["web"]


def test_huge_file_on_disk_is_not_read(tmp_path: Path) -> None:
    """``--worktree`` refuses a huge file by its size, without reading it."""
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "web.yaml").write_text(SMALL)
    with (tmp_path / "apps" / "big.yaml").open("wb") as f:
        f.truncate(8 * 1024**3)  # 8 GiB, sparse: reading it would exhaust the machine
    files = read_worktree(tmp_path, "apps").files
    assert files["apps/big.yaml"] is OVERSIZED
    assert files["apps/web.yaml"] == SMALL.encode()
