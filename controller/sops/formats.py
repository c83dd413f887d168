"""The four SOPS file formats, read into one tree (ordered dicts, lists, scalars) plus the
``sops`` metadata, and written back as plaintext in the file's own format.

- YAML, one ``sops:`` block per document (multi-document files too), read YAML 1.2-style as
  sops does (``1e-06`` is a float, ``yes`` a string, timestamps kept as written); duplicate and
  non-string keys are refused. Comments are not kept in the plaintext written back.
- JSON, a ``"sops"`` object; binary files are JSON ``{"data": ..., "sops": ...}`` (the one case
  told apart by name: a file not named ``*.json`` with exactly those keys is binary).
- dotenv, ``KEY=VALUE`` lines split at the first ``=``, no trimming or unquoting, ``\\n`` for a
  newline; the metadata flattened as ``sops_<key>__list_<i>__map_<key>=...``.

Recognised by content, never by name: `parse` returns None for a file with no sops metadata.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from controller.sops.values import Comment, Timestamp

Format = Literal["yaml", "json", "dotenv", "binary"]


class FormatError(ValueError):
    """A file that cannot be read as any SOPS format."""


@dataclass
class Parsed:
    """A SOPS file read: its format, its documents without metadata, and the metadata."""

    format: Format
    documents: list[dict[str, Any]] = field(repr=False)
    metadata: dict[str, Any]


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's scalars (and sops's timestamps)."""


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (
        "timestamp",
        r"^(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}"
        r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?)?)$",
        "0123456789",
    ),
):
    _Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), _first)


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text)


def _float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith("inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    return float("nan") if text.endswith("nan") else float(text)


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Timestamp:
    return Timestamp(loader.construct_scalar(node))  # type: ignore[arg-type]


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    assert isinstance(node, yaml.MappingNode)
    loader.flatten_mapping(node)
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise FormatError(f"line {key_node.start_mark.line + 1}: a key that is not a string")
        if key in out:
            raise FormatError(f"line {key_node.start_mark.line + 1}: key {key!r} given twice")
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _float)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"key {key!r} given twice")
        out[key] = value
    return out


def _split(documents: list[Any]) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The documents without their ``sops`` block and the first block; None without one."""
    if not documents or not all(isinstance(d, dict) for d in documents):
        return None
    metadata = next((d["sops"] for d in documents if isinstance(d.get("sops"), dict)), None)
    if metadata is None:
        return None
    return [{k: v for k, v in d.items() if k != "sops"} for d in documents], metadata


def _parse_json(text: str, file: str) -> Parsed | None:
    try:
        document = json.loads(text, object_pairs_hook=_json_object)
    except ValueError:
        return None
    split = _split([document])
    if split is None:
        return None
    documents, metadata = split
    binary = set(documents[0]) == {"data"} and not file.lower().endswith(".json")
    return Parsed("binary" if binary else "json", documents, metadata)


def _parse_yaml(text: str) -> Parsed | None:
    try:
        documents = list(yaml.load_all(text, Loader=_Yaml12Loader))
    except (yaml.YAMLError, RecursionError):
        return None
    split = _split([d for d in documents if d is not None])
    return None if split is None else Parsed("yaml", *split)


def _unflatten(flat: dict[str, str]) -> dict[str, Any]:
    """dotenv metadata (``age__list_0__map_enc``) back into nested lists and maps."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split("__")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = parts[i + 1] if not last else None
            key: Any = part
            if part.startswith("list_") and isinstance(node, list):
                key = int(part[5:])
                while len(node) <= key:
                    node.append(None)
            elif part.startswith("map_") and i > 0:
                key = part[4:]
            if last:
                node[key] = value
                break
            child: Any = [] if nxt is not None and nxt.startswith("list_") else {}
            if isinstance(node, list):
                node[key] = node[key] if node[key] is not None else child
            else:
                node.setdefault(key, child)
            node = node[key]
    return out


def _parse_dotenv(text: str) -> Parsed | None:
    values: dict[str, Any] = {}
    flat: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("#"):
            values[f"#{number}"] = Comment(line[1:])
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise FormatError(f"line {number}: not KEY=VALUE")
        value = value.replace("\\n", "\n")
        if key.startswith("sops_"):
            flat[key[5:]] = value
        elif key in values:
            raise FormatError(f"line {number}: key {key!r} given twice")
        else:
            values[key] = value
    if "mac" not in flat:
        return None
    return Parsed("dotenv", [values], _unflatten(flat))


def parse(raw: bytes, file: str) -> Parsed | None:
    """The SOPS file in ``raw``, or None when it carries no sops metadata."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _parse_json(text, file)
    if re.search(r"^sops_mac=", text, re.MULTILINE):
        return _parse_dotenv(text)
    if re.search(r"^\[sops\]\s*$", text, re.MULTILINE):
        raise FormatError("an INI file: trueup reads YAML, JSON, dotenv and binary SOPS files")
    return _parse_yaml(text)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Timestamp) else value


def _dotenv_line(key: str, value: Any) -> str:
    if isinstance(value, Comment):
        return f"#{value}\n"
    escaped = str(value).replace("\n", "\\n")
    return f"{key}={escaped}\n"


def emit(parsed_format: Format, documents: list[dict[str, Any]]) -> bytes:
    """The plaintext file of decrypted ``documents`` in ``parsed_format``."""
    if parsed_format == "binary":
        return str(documents[0]["data"]).encode("utf-8", "surrogateescape")
    if parsed_format == "dotenv":
        text = "".join(_dotenv_line(k, v) for k, v in documents[0].items())
        return text.encode("utf-8", "surrogateescape")
    if parsed_format == "json":
        text = json.dumps(_plain(documents[0]), indent=4, ensure_ascii=False) + "\n"
        return text.encode("utf-8", "surrogateescape")
    text = yaml.safe_dump_all(
        [_plain(d) for d in documents],
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )
    return text.encode("utf-8", "surrogateescape")
