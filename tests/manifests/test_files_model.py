"""``spec.files`` and ``spec.reload`` in the manifest: each mistake is an error at its place."""

from __future__ import annotations

from controller.manifests.loader import load_files

HEAD = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: busybox:1.36\n"


def _problems(body: str) -> list[str]:
    loaded = load_files({"apps/web.yaml": (HEAD + body).encode()})
    return [str(p) for p in loaded.problems]


def test_file_entries_are_checked_where_they_are_written() -> None:
    """A relative container path, a source leaving the repository, two origins, a bad mode
    and a bad owner are each reported at the field, with its line and column."""
    problems = _problems(
        "  files:\n"
        "    - {path: etc/x, source: a}\n"
        "    - {path: /b, source: ../up}\n"
        "    - {path: /c, source: a, secretFile: k}\n"
        "    - {path: /d, source: a, mode: '999'}\n"
        "    - {path: /e, source: a, owner: root}\n"
    )
    assert problems == [
        "apps/web.yaml:7:14: spec.files[0].path: 'etc/x' must be an absolute path in the container",
        "apps/web.yaml:8:26: spec.files[1].source: '../up' must name a file or folder inside "
        "the repository",
        "apps/web.yaml:9:41: spec.files[2].secretFile: a file needs exactly one of source, "
        "secretRef or secretFile (got source, secretFile)",
        "apps/web.yaml:10:35: spec.files[3].mode: '999' is not a file mode: give octal digits, "
        'e.g. "0444"',
        "apps/web.yaml:11:36: spec.files[4].owner: String should match pattern "
        "'^[0-9]{1,10}(:[0-9]{1,10})?$'",
    ]


def test_two_entries_for_one_path_and_a_bad_reload_signal_are_errors() -> None:
    """Two files at one path are refused at the second; ``reload`` takes signal names."""
    assert _problems("  files:\n    - {path: /x, source: a}\n    - {path: /x/, source: b}\n") == [
        "apps/web.yaml:8:14: spec.files[1].path: two files at '/x'"
    ]
    assert _problems("  reload: {signal: SIGNOPE}\n") == [
        "apps/web.yaml:6:20: spec.reload.signal: 'SIGNOPE' is not a signal name "
        "(e.g. SIGTERM, SIGINT, SIGQUIT)"
    ]
    assert (
        _problems(
            "  files: [{path: /run/s, secretRef: {name: db, key: pw}, mode: 0440, owner: '1:2'}]\n"
            "  reload: {}\n"
        )
        == []
    )
