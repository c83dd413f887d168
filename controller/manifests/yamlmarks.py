"""YAML documents with positions: every value's path mapped to its line and column.

PyYAML's composer keeps marks on nodes; this module constructs plain Python data from the node
tree while recording, for each path (``("spec", "ports", 0, "name")``), where its key and its
value stand in the file. The loader uses the map to point schema errors at the right line.
Aliases and ``<<`` merge keys are expanded, but the expansion is bounded so a "billion
laughs" document is refused instead of eating the machine, and nesting is bounded while the
node tree is composed (libyaml's own composer recurses in C and crashes the process on a
deeply nested file, so nodes are composed by PyYAML's Python composer over libyaml's events).

Manifests are read as PyYAML reads YAML 1.1; compose files as Compose reads them, under YAML
1.2's core schema (``documents(text, core_schema=True)``: ``22:22`` is text, not base 60).

Committed text is hostile: every value a constructor cannot build (``!!int x``, a 4301-digit
integer, ``!!timestamp 2001-13-01``), every tag outside plain YAML data (``!!python/...``,
``!!set``, local tags), and every failure of any kind while composing or constructing becomes
a ``DocumentError`` at the value's position, never an exception of another class.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.composer import Composer

Path = tuple[str | int, ...]

MAX_NODES = 50_000
MAX_DEPTH = 64
MAX_CHARS = 4 * 1024 * 1024  # of all scalars once aliases are expanded (a file has 1 MiB)
MAX_INT_DIGITS = 4300  # as Python's int/str conversion limit: every accepted int can be printed
_MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10))

_TAG = "tag:yaml.org,2002:"
_COLLECTION_TAGS = {yaml.MappingNode: _TAG + "map", yaml.SequenceNode: _TAG + "seq"}
_SCALAR_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "str", "binary", "timestamp")}


class _DepthBound:
    """Composes nodes in Python (``Composer``), refusing nesting deeper than ``MAX_DEPTH``."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[attr-defined]  # the parser's
                raise DocumentError(
                    f"document nests deeper than {MAX_DEPTH} levels",
                    Mark(event.start_mark.line + 1, event.start_mark.column + 1),
                )
            node = Composer.compose_node(self, parent, index)  # type: ignore[arg-type]
            assert node is not None  # an event always composes to a node
            return node
        finally:
            self._depth -= 1


class _PureLoader(_DepthBound, yaml.SafeLoader):
    """PyYAML's pure-Python loader, depth-bounded."""


_Loader: type[yaml.SafeLoader] = _PureLoader
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure parser
    pass
else:

    class _FastLoader(
        _DepthBound,
        Composer,
        CParser,
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """libyaml's parser (several times faster) under the Python composer."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            Composer.__init__(self)

    _Loader = _FastLoader  # type: ignore[assignment]  # it has every method a SafeLoader has


def _core_resolvers() -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    """PyYAML's implicit resolvers, narrowed to YAML 1.2's core schema as Compose reads it:
    only ``true``/``false`` are booleans (``yes``, ``on``, ``no`` stay text), no base-60
    numbers (``22:22`` stays text, not 1342); ``1e3`` is a float. Timestamps stay (Compose's
    YAML library reads them too, and refuses them where text is expected)."""
    narrowed = {
        first: [(tag, rx) for tag, rx in pairs if tag.rsplit(":", 1)[-1] not in _CORE_RETAGGED]
        for first, pairs in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }
    for tag, pattern, firsts in _CORE_PATTERNS:
        for first in firsts:
            narrowed.setdefault(first, []).append((_TAG + tag, re.compile(pattern, re.X)))
    return narrowed


_CORE_RETAGGED = {"bool", "int", "float"}
_CORE_PATTERNS = (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "int",
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$",
        "-+0123456789",
    ),
    (
        "float",
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        "-+0123456789.",
    ),
)


class _PureCoreLoader(_PureLoader):
    """The pure loader under YAML 1.2's core schema (see `_core_resolvers`)."""

    yaml_implicit_resolvers = _core_resolvers()


_CoreLoader: type[yaml.SafeLoader] = _PureCoreLoader
if _Loader is not _PureLoader:

    class _FastCoreLoader(_Loader):  # type: ignore[misc,valid-type]  # libyaml's, when built
        """libyaml's loader under YAML 1.2's core schema."""

        yaml_implicit_resolvers = _core_resolvers()

    _CoreLoader = _FastCoreLoader


@dataclass(frozen=True)
class Mark:
    """A position in a file, 1-based as editors show it."""

    line: int
    column: int


@dataclass
class Document:
    """One YAML document: its data, where it starts, and where each path's key/value stand."""

    data: object
    start: Mark
    keys: dict[Path, Mark] = field(default_factory=dict)
    values: dict[Path, Mark] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path, Mark]] = field(default_factory=list)

    def locate(self, path: Path, *, prefer_key: bool = False) -> Mark:
        """The closest known position for ``path``: itself, else its nearest ancestor."""
        for n in range(len(path), -1, -1):
            sub = path[:n]
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if sub in first:
                return first[sub]
            if sub in second:
                return second[sub]
        return self.start


class DocumentError(Exception):
    """A YAML problem at a position (syntax error, document too large or too deep)."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _position(text: str, offset: int) -> Mark:
    before = text[:offset]
    return Mark(before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.count = 0
        self.chars = 0

    def build(self, node: yaml.Node, path: Path, depth: int) -> object:
        self.count += 1
        if self.count > MAX_NODES:
            raise DocumentError(
                f"document expands to more than {MAX_NODES} values (aliases?)", _mark(node)
            )
        if depth > MAX_DEPTH:
            raise DocumentError(f"document nests deeper than {MAX_DEPTH} levels", _mark(node))
        self.doc.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and (
            node.tag != _COLLECTION_TAGS[type(node)]
        ):
            raise DocumentError(f"YAML tag {_short(node.tag)} is not allowed", _mark(node))
        if isinstance(node, yaml.MappingNode):
            self._flatten(node, 0)  # resolves `<<` merge keys in place
            result: dict[object, object] = {}
            for key_node, value_node in node.value:
                key = self._scalar_key(key_node)
                child = (*path, key) if isinstance(key, str | int) else (*path, str(key))
                if key in result:
                    self.doc.duplicate_keys.append((child, _mark(key_node)))
                self.doc.keys.setdefault(child, _mark(key_node))
                result[key] = self.build(value_node, child, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _flatten(self, node: yaml.MappingNode, depth: int) -> None:
        """PyYAML's ``flatten_mapping`` (merged pairs first, then the node's own), with the
        pairs a merge copies counted against ``MAX_NODES``: doubling merges would otherwise
        grow exponentially before a single value is built."""
        if depth > MAX_DEPTH:
            raise DocumentError("merge keys nest too deeply (a merge of itself?)", _mark(node))
        merge: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _TAG + "merge":
                own.append((key_node, value_node))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in reversed(sources):  # earlier sources win: they come last
                if not isinstance(source, yaml.MappingNode):
                    raise DocumentError(
                        "a merge key (<<) takes a mapping or a list of mappings", _mark(source)
                    )
                self._flatten(source, depth + 1)
                self.count += len(source.value)
                if self.count > MAX_NODES:
                    raise DocumentError(
                        f"document expands to more than {MAX_NODES} values (merge keys?)",
                        _mark(source),
                    )
                merge.extend(source.value)
        if merge:
            node.value = merge + own

    def _scalar(self, node: yaml.Node) -> object:
        """The value of a plain YAML scalar; anything a constructor cannot build is located."""
        if node.tag == _TAG + "value":  # a plain `=`: a string, as PyYAML makes it in keys
            node.tag = _TAG + "str"
        if node.tag not in _SCALAR_TAGS:
            raise DocumentError(f"YAML tag {_short(node.tag)} is not allowed", _mark(node))
        self.chars += len(node.value)
        if self.chars > MAX_CHARS:  # one long string repeated through aliases
            raise DocumentError(
                f"document expands to more than {MAX_CHARS // 1024 // 1024} MiB of text (aliases?)",
                _mark(node),
            )
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # a constructor's ValueError, KeyError, IndexError, ...
            shown = str(node.value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            if isinstance(exc, ValueError) and "digits" in str(exc):
                reason = f"an integer of more than {MAX_INT_DIGITS} digits"
                raise DocumentError(f"YAML error: {reason}", _mark(node)) from exc
            raise DocumentError(
                f"YAML error: {shown!r} is not a valid {_short(node.tag)}", _mark(node)
            ) from exc
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
            raise DocumentError(
                f"YAML error: an integer of more than {MAX_INT_DIGITS} digits", _mark(node)
            )
        return value

    def _scalar_key(self, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode):
            raise DocumentError("mapping keys must be plain values", _mark(node))
        key = self._scalar(node)
        return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def documents(text: str, *, core_schema: bool = False) -> Iterator[Document]:
    """Yield each document of ``text`` in order; raise ``DocumentError`` at the first bad one.

    ``core_schema``: resolve plain scalars as YAML 1.2's core schema does (compose files, as
    Compose reads them) instead of PyYAML's YAML 1.1."""
    try:
        loader = (_CoreLoader if core_schema else _Loader)(text)
    except yaml.reader.ReaderError as exc:
        raise DocumentError(f"YAML error: {exc.reason}", _position(text, exc.position)) from exc
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or exc.context_mark
                where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
                problem = exc.problem or "invalid YAML"
                context = f" ({exc.context})" if exc.context else ""
                raise DocumentError(f"YAML syntax error: {problem}{context}", where) from exc
            except yaml.reader.ReaderError as exc:
                raise DocumentError(
                    f"YAML error: {exc.reason}", _position(text, exc.position)
                ) from exc
            except yaml.YAMLError as exc:
                raise DocumentError(f"YAML error: {exc}", Mark(1, 1)) from exc
            except DocumentError:
                raise
            except RecursionError as exc:
                raise DocumentError("document nests too deeply", Mark(1, 1)) from exc
            except Exception as exc:  # whatever else the parser may raise: this file only
                raise DocumentError(f"YAML error: {type(exc).__name__}", Mark(1, 1)) from exc
            if node is None:
                continue
            doc = Document(data=None, start=_mark(node))
            try:
                doc.data = _Builder(loader, doc).build(node, (), 0)
            except yaml.constructor.ConstructorError as exc:
                mark = exc.problem_mark
                where = Mark(mark.line + 1, mark.column + 1) if mark else doc.start
                raise DocumentError(f"YAML error: {exc.problem}", where) from exc
            except DocumentError:
                raise
            except RecursionError as exc:
                raise DocumentError("document nests too deeply", doc.start) from exc
            except Exception as exc:  # whatever else constructing may raise: this file only
                raise DocumentError(f"YAML error: {type(exc).__name__}", doc.start) from exc
            yield doc
    finally:
        loader.dispose()
