"""``.dockerignore`` is matched as the docker SDK matches it (the SDK is the oracle here), and
a pattern that cannot match fails the build context with its line, not the pass."""

from __future__ import annotations

import io
import itertools
import tarfile

import pytest
from docker.utils.build import PatternMatcher
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Blob, Tree

from controller.errors import SourceError
from controller.source.dockerignore import BadPattern, DockerIgnore
from controller.source.tree import tar_tree

PATTERNS = [
    "*.log",
    "tmp/",
    "docs",
    "!docs/keep.md",
    "secret*",
    "Dockerfile*",
    "**/*.pyc",
    "build/**",
    "**",
    "!src/**/keep",
    "a/../b",
    "./c/./d",
    "..",
    ".",
    "/abs/path/",
    "?x",
    "[a-c]*.txt",
    "[!a-c]*.md",
    "[^x]y",
    "[]]z",
    "[unclosed",
    "CASE.TXT",
    "dir\\*",
    "  padded  ",
    "!",
    "**/",
    "a**b",
]
PATHS = [
    ".dockerignore",
    "Dockerfile",
    "Dockerfile.dev",
    "app.log",
    "logs/app.log",
    "tmp",
    "tmp/x",
    "docs",
    "docs/keep.md",
    "docs/other.md",
    "secret.env",
    "conf/secret.env",
    "src/a.pyc",
    "src/pkg/b.pyc",
    "src/pkg/keep",
    "build",
    "build/out/x",
    "b",
    "c/d",
    "c/d/e",
    "abs/path/f",
    "ax",
    "bx",
    "xx/ax",
    "a1.txt",
    "d1.txt",
    "a.md",
    "z.md",
    "ay",
    "xy",
    "]z",
    "[unclosed",
    "case.txt",
    "dir*",
    "padded",
    "aXb",
    "a/x/b",
]


def _sdk(patterns: list[str]) -> PatternMatcher:
    return PatternMatcher(list(patterns))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_matches_what_the_sdk_matches(pattern: str) -> None:
    """Alone and with its negation after it, every pattern excludes exactly the paths the
    SDK's ``PatternMatcher`` excludes."""
    for patterns in ([pattern], [pattern, "!" + pattern.lstrip("!")]):
        ours, sdk = DockerIgnore(patterns), _sdk(patterns)
        assert [p for p in PATHS if ours.matches(p)] == [p for p in PATHS if sdk.matches(p)]


def test_pattern_lists_decide_as_the_sdk_does() -> None:
    """The last matching pattern decides, parent folders count, .dockerignore is kept: over
    every ordered pair and triple of a few interacting patterns."""
    few = ["docs", "!docs/keep.md", "*.md", "!**/keep", "**/*.pyc", "src", "!src/pkg"]
    for size in (2, 3):
        for patterns in itertools.permutations(few, size):
            ours, sdk = DockerIgnore(patterns), _sdk(list(patterns))
            for path in PATHS:
                assert ours.matches(path) == sdk.matches(path), (patterns, path)


def test_cleaned_patterns_and_exclusions_are_the_sdks() -> None:
    """What `tree` reads to decide whether to walk into an excluded folder is the SDK's."""
    ours = DockerIgnore(PATTERNS)
    sdk = _sdk(PATTERNS)
    assert [(p.exclusion, p.cleaned_pattern, p.dirs) for p in ours.patterns] == [
        (p.exclusion, p.cleaned_pattern, p.dirs) for p in sdk.patterns
    ]


def test_a_pattern_that_cannot_match_is_named() -> None:
    """A character range backwards is no pattern: the matcher says which one."""
    with pytest.raises(BadPattern) as caught:
        DockerIgnore(["*.log", "[z-a]"])
    assert caught.value.pattern == "[z-a]"


def _context(files: dict[str, bytes]) -> tuple[MemoryObjectStore, bytes]:
    store = MemoryObjectStore()
    tree = Tree()
    for name, data in files.items():
        blob = Blob.from_string(data)
        store.add_object(blob)
        tree.add(name.encode(), 0o100644, blob.id)
    store.add_object(tree)
    return store, tree.id


def test_a_bad_dockerignore_line_fails_the_context_with_its_line() -> None:
    """``[z-a]`` on line 3 of .dockerignore is a SourceError naming the line and pattern
    (it used to escape as ``re.error`` and stop the pass)."""
    store, tree_id = _context(
        {".dockerignore": b"# c\n*.log\n[z-a]\n", "Dockerfile": b"FROM busybox:1.36\n"}
    )
    with pytest.raises(SourceError, match=r"\.dockerignore line 3: cannot match '\[z-a\]'"):
        tar_tree(store, tree_id)


def test_a_dockerfile_name_that_cannot_match_is_named() -> None:
    """The Dockerfile is always kept by a pattern of its name; a name that is no pattern is
    a SourceError naming it."""
    store, tree_id = _context({"[z-a]": b"FROM busybox:1.36\n"})
    with pytest.raises(SourceError, match=r"dockerfile '\[z-a\]'"):
        tar_tree(store, tree_id, dockerfile="[z-a]")


def test_an_ignored_file_is_left_out_of_the_tar() -> None:
    """The tar holds what the patterns keep, the Dockerfile and .dockerignore always."""
    store, tree_id = _context(
        {
            ".dockerignore": b"*.log\nDockerfile\n",
            "Dockerfile": b"FROM busybox:1.36\n",
            "app.log": b"x",
            "index.html": b"hi",
        }
    )
    with tarfile.open(fileobj=io.BytesIO(tar_tree(store, tree_id))) as tar:
        assert sorted(tar.getnames()) == [".dockerignore", "Dockerfile", "index.html"]
