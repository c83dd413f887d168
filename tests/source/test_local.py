"""GitSource on a local repository: read in place from git objects, never from the disk files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import controller.source.git as git_module
from controller.errors import RevisionNotFound, SourceError
from controller.source import GitSource, Revision
from tests.gitutil import commit_files, git, make_repo


def open_source(path: Path, state_dir: Path, **kwargs: object) -> GitSource:
    return GitSource(str(path), state_dir=state_dir, **kwargs)  # type: ignore[arg-type]


def test_fetch_returns_the_tip_of_the_current_branch(repo: Path, state_dir: Path) -> None:
    """A local repo's fetch() reads the current branch's tip and names the branch."""
    with open_source(repo, state_dir) as source:
        assert not source.is_remote
        assert source.fetch() == Revision(git(repo, "rev-parse", "HEAD"), "main")


def test_manifest_files_are_yaml_only_sorted_and_keyed_by_tree(repo: Path, state_dir: Path) -> None:
    """Only *.yaml/*.yml under --path come back, sorted, with git's tree id of --path."""
    with open_source(repo, state_dir) as source:
        sha = source.fetch().sha
        got = source.manifest_files(sha, "apps")
    assert got.revision == sha
    assert got.tree_id == git(repo, "rev-parse", "HEAD:apps")
    assert list(got.files) == ["apps/db.yml", "apps/web.yaml"]
    assert got.files["apps/web.yaml"] == b"kind: App\nmetadata: {name: web}\n"


def test_default_path_reads_the_whole_deployment_root(repo: Path, state_dir: Path) -> None:
    """--path "." returns every manifest in the repository, recursively."""
    commit_files(repo, {"more/deep/x.yaml": "a: 1\n"}, "deep")
    with open_source(repo, state_dir) as source:
        got = source.manifest_files(source.fetch().sha, ".")
    assert list(got.files) == ["apps/db.yml", "apps/web.yaml", "more/deep/x.yaml"]
    assert got.tree_id == git(repo, "rev-parse", "HEAD^{tree}")


def test_path_may_name_a_single_yaml_file(repo: Path, state_dir: Path) -> None:
    """--path apps/web.yaml reads just that file."""
    with open_source(repo, state_dir) as source:
        got = source.manifest_files(source.fetch().sha, "apps/web.yaml")
    assert list(got.files) == ["apps/web.yaml"]


def test_older_revision_by_sha_short_sha_and_tag(repo: Path, state_dir: Path) -> None:
    """--rev accepts a full SHA, a short SHA and a tag, and reads the files as they were then."""
    old = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "v1", "-m", "release one")
    commit_files(repo, {"apps/web.yaml": "changed: true\n"}, "change web")
    with open_source(repo, state_dir) as source:
        assert source.resolve(old).sha == old
        assert source.resolve(old[:7]).sha == old
        assert source.resolve("v1") == Revision(old, None)  # annotated tag peeled to its commit
        assert source.resolve(None).sha == git(repo, "rev-parse", "HEAD")
        before = source.manifest_files(old, "apps").files["apps/web.yaml"]
        after = source.manifest_files(source.resolve(None).sha, "apps").files["apps/web.yaml"]
    assert before.startswith(b"kind: App")
    assert after == b"changed: true\n"


def test_another_branch_is_read_without_checking_it_out(repo: Path, state_dir: Path) -> None:
    """--branch reads that branch's tip while the working tree stays on main."""
    git(repo, "switch", "-q", "-c", "staging")
    staging = commit_files(repo, {"apps/web.yaml": "staging: true\n"}, "staging")
    git(repo, "switch", "-q", "main")
    with open_source(repo, state_dir, branch="staging") as source:
        assert source.fetch() == Revision(staging, "staging")
        assert source.manifest_files(staging, "apps").files["apps/web.yaml"] == b"staging: true\n"
    with open_source(repo, state_dir) as source:
        assert source.resolve("staging") == Revision(staging, "staging")


def test_fetch_sees_new_commits_also_after_gc_and_pack_refs(repo: Path, state_dir: Path) -> None:
    """An open source follows commits, repacks and packed refs made by git behind its back."""
    with open_source(repo, state_dir) as source:
        first = source.fetch().sha
        second = commit_files(repo, {"apps/new.yaml": "n: 1\n"}, "new")
        assert source.fetch().sha == second
        git(repo, "gc", "-q", "--prune=now")
        git(repo, "pack-refs", "--all")
        assert not (repo / ".git/refs/heads/main").exists()
        assert source.fetch().sha == second
        third = commit_files(repo, {"apps/new.yaml": "n: 2\n"}, "again")
        git(repo, "gc", "-q", "--prune=now")
        assert source.fetch().sha == third
        assert source.manifest_files(third, "apps").files["apps/new.yaml"] == b"n: 2\n"
        assert source.manifest_files(first, "apps").files.keys() == {"apps/db.yml", "apps/web.yaml"}


def test_uncommitted_edits_are_ignored_unless_worktree(repo: Path, state_dir: Path) -> None:
    """Without --worktree the commit is read; with it, the files on disk (edits, new files)."""
    (repo / "apps/web.yaml").write_text("edited: true\n")
    (repo / "apps/new.yaml").write_text("untracked: true\n")
    with open_source(repo, state_dir) as source:
        committed = source.manifest_files(source.fetch().sha, "apps")
        on_disk = source.read_worktree("apps")
    assert committed.files["apps/web.yaml"].startswith(b"kind: App")
    assert "apps/new.yaml" not in committed.files
    assert on_disk.revision is None and on_disk.tree_id is None
    assert on_disk.files == {
        "apps/db.yml": b"kind: App\nmetadata: {name: db}\n",
        "apps/new.yaml": b"untracked: true\n",
        "apps/web.yaml": b"edited: true\n",
    }


def test_subdirectory_is_the_deployment_root(tmp_path: Path, state_dir: Path) -> None:
    """--repo pointing inside a repository reads that folder's committed tree as the root."""
    big = tmp_path / "big"
    make_repo(
        big,
        {
            "src/main.py": "print()\n",
            "deploy/apps/web.yaml": "w: 1\n",
            "deploy/services/web/Dockerfile": "FROM busybox\n",
            "other/apps/nope.yaml": "no: 1\n",
        },
    )
    with open_source(big / "deploy", state_dir) as source:
        sha = source.fetch().sha
        files = source.manifest_files(sha, ".")
        assert files.files == {"apps/web.yaml": b"w: 1\n"}
        assert files.tree_id == git(big, "rev-parse", "HEAD:deploy")
        assert source.build_context(sha, "services/web").tree_id == git(
            big, "rev-parse", "HEAD:deploy/services/web"
        )
        assert source.has_path(sha, "apps/web.yaml")
        assert not source.has_path(sha, "src")
        (big / "deploy/apps/draft.yaml").write_text("d: 1\n")
        assert list(source.read_worktree(".").files) == ["apps/draft.yaml", "apps/web.yaml"]
        for bad in ("../other/apps", "/etc", "apps/../../src", ".."):
            with pytest.raises(SourceError):
                source.manifest_files(sha, bad)
            with pytest.raises(SourceError):
                source.build_context(sha, bad)


def test_uncommitted_subdirectory_root_is_a_clear_error(tmp_path: Path, state_dir: Path) -> None:
    """A deployment root that exists on disk but not in the commit names the folder."""
    big = tmp_path / "big"
    make_repo(big, {"a.txt": "a\n"})
    (big / "deploy").mkdir()
    with open_source(big / "deploy", state_dir) as source:
        sha = source.fetch().sha
        with pytest.raises(SourceError, match="deploy"):
            source.manifest_files(sha, ".")


def test_bare_repository_path(repo: Path, tmp_path: Path, state_dir: Path) -> None:
    """A bare repository is read in place; it has no worktree to preview."""
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    with open_source(bare, state_dir) as source:
        assert not source.is_remote
        rev = source.fetch()
        assert rev == Revision(git(repo, "rev-parse", "HEAD"), "main")
        assert "apps/web.yaml" in source.manifest_files(rev.sha, "apps").files
        with pytest.raises(SourceError, match="worktree"):
            source.read_worktree("apps")
    assert not any(state_dir.iterdir()), "a local repo is never mirrored"


def test_submodule_and_symlinks_do_not_crash(repo: Path, tmp_path: Path, state_dir: Path) -> None:
    """A submodule is skipped; a symlink inside --path is followed, one leaving it is skipped."""
    lib = tmp_path / "lib"
    make_repo(lib, {"lib.yaml": "lib: 1\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "apps/lib")
    os.symlink("web.yaml", repo / "apps/alias.yaml")
    os.symlink("../../../../etc/passwd", repo / "apps/evil.yaml")
    os.symlink("/etc/hostname", repo / "apps/absolute.yaml")
    os.symlink("missing.yaml", repo / "apps/dangling.yaml")
    os.symlink("../services", repo / "apps/dir.yaml")
    sha = commit_files(repo, {}, "submodule and links")
    with open_source(repo, state_dir) as source, capture_logs() as logs:
        files = source.manifest_files(sha, "apps").files
        context = source.build_context(sha, "apps")
    assert files["apps/alias.yaml"] == files["apps/web.yaml"]
    assert set(files) == {"apps/alias.yaml", "apps/db.yml", "apps/web.yaml"}
    skipped = {e["file"] for e in logs if e["event"] == "manifest_symlink_skipped"}
    assert skipped == {
        "apps/evil.yaml",
        "apps/absolute.yaml",
        "apps/dangling.yaml",
        "apps/dir.yaml",
    }
    assert context.tar  # the tar of a folder with a submodule and symlinks is made


def test_unknown_revisions_and_branches(repo: Path, state_dir: Path) -> None:
    """Unknown or malformed revisions raise RevisionNotFound naming them."""
    with open_source(repo, state_dir) as source:
        for rev in ("nope", "0" * 40, "deadbeef", "../../etc/passwd", "-x", "main..other"):
            with pytest.raises(RevisionNotFound):
                source.resolve(rev)
        with pytest.raises(RevisionNotFound, match="nope"):
            source.manifest_files("nope", "apps")
        tree = git(repo, "rev-parse", "HEAD^{tree}")
        with pytest.raises(RevisionNotFound, match="commit"):
            source.resolve(tree)
    with (
        open_source(repo, state_dir, branch="missing") as source,
        pytest.raises(RevisionNotFound, match="missing"),
    ):
        source.fetch()


def test_missing_path_or_context_is_a_source_error(repo: Path, state_dir: Path) -> None:
    """A --path or build context that is not in the commit raises SourceError naming it."""
    with open_source(repo, state_dir) as source:
        sha = source.fetch().sha
        with pytest.raises(SourceError, match="nowhere"):
            source.manifest_files(sha, "nowhere")
        with pytest.raises(SourceError, match="nowhere"):
            source.build_context(sha, "nowhere")
        with pytest.raises(SourceError, match="not a folder"):
            source.build_context(sha, "services/web/Dockerfile")
        with pytest.raises(SourceError, match="neither"):
            source.manifest_files(sha, "apps/README.md")


def test_not_a_repository(tmp_path: Path, state_dir: Path) -> None:
    """A folder outside any repository, or a missing folder, is a SourceError."""
    plain = tmp_path / "plain"
    plain.mkdir()
    ceiling = os.environ.get("GIT_CEILING_DIRECTORIES")
    if ceiling is None and any((p / ".git").exists() for p in tmp_path.parents):
        pytest.skip("the temporary folder is inside a git repository")
    with pytest.raises(SourceError, match="not inside a git repository"):
        GitSource(str(plain), state_dir=state_dir)
    with pytest.raises(SourceError, match="no such directory"):
        GitSource(str(tmp_path / "missing"), state_dir=state_dir)


def test_detached_head_and_empty_repository(repo: Path, tmp_path: Path, state_dir: Path) -> None:
    """A detached HEAD is read with no branch; an empty repository is RevisionNotFound."""
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    with open_source(repo, state_dir) as source:
        assert source.fetch() == Revision(sha, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    with open_source(empty, state_dir) as source, pytest.raises(RevisionNotFound, match="main"):
        source.fetch()


def test_same_tree_is_parsed_once(
    repo: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that does not touch --path keeps its tree id and is served from the cache."""
    calls: list[str] = []
    real = git_module.collect_manifests

    def counting(*args: object, **kwargs: object) -> dict[str, bytes]:
        calls.append("read")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(git_module, "collect_manifests", counting)
    with open_source(repo, state_dir) as source:
        one = source.manifest_files(source.fetch().sha, "apps")
        commit_files(repo, {"services/web/www/index.html": "<h1>v2</h1>\n"}, "web content")
        two = source.manifest_files(source.fetch().sha, "apps")
        two.files.clear()  # callers get their own dict; the cache is not shared
        three = source.manifest_files(source.fetch().sha, "apps")
    assert one.revision != two.revision
    assert one.tree_id == two.tree_id == three.tree_id
    assert three.files == one.files
    assert calls == ["read"]


def test_closed_source_refuses_reads(repo: Path, state_dir: Path) -> None:
    """After close() every read raises SourceError instead of touching closed pack files."""
    source = open_source(repo, state_dir)
    sha = source.fetch().sha
    source.close()
    with pytest.raises(SourceError, match="closed"):
        source.manifest_files(sha, "apps")
