"""YAML documents with positions: every value's path mapped to its line and column.

PyYAML's composer keeps marks on nodes; this module constructs plain Python data from the node
tree while recording, for each path (``("spec", "ports", 0, "name")``), where its key and its
value stand in the file. The loader uses the map to point schema errors at the right line.
Aliases are expanded, but the expansion is bounded so a "billion laughs" document is refused
instead of eating the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

Path = tuple[str | int, ...]

# libyaml's parser when PyYAML was built with it (several times faster), else the pure one;
# both give nodes with marks, and the constructing below is the same Python code.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_NODES = 50_000
MAX_DEPTH = 64


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

    def build(self, node: yaml.Node, path: Path, depth: int) -> object:
        self.count += 1
        if self.count > MAX_NODES:
            raise DocumentError(
                f"document expands to more than {MAX_NODES} values (aliases?)", _mark(node)
            )
        if depth > MAX_DEPTH:
            raise DocumentError(f"document nests deeper than {MAX_DEPTH} levels", _mark(node))
        self.doc.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys in place
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
        return self.loader.construct_object(node, deep=True)

    def _scalar_key(self, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode):
            raise DocumentError("mapping keys must be plain values", _mark(node))
        key = self.loader.construct_object(node, deep=True)
        return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def documents(text: str) -> Iterator[Document]:
    """Yield each document of ``text`` in order; raise ``DocumentError`` at the first bad one."""
    try:
        loader = _Loader(text)
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
            if node is None:
                continue
            doc = Document(data=None, start=_mark(node))
            try:
                doc.data = _Builder(loader, doc).build(node, (), 0)
            except yaml.constructor.ConstructorError as exc:
                mark = exc.problem_mark
                where = Mark(mark.line + 1, mark.column + 1) if mark else doc.start
                raise DocumentError(f"YAML error: {exc.problem}", where) from exc
            except RecursionError as exc:
                raise DocumentError("document nests too deeply", doc.start) from exc
            yield doc
    finally:
        loader.dispose()
