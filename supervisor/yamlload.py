"""Reading untrusted YAML: a SafeLoader with bounds, shared by supd (manifest validation) and
supctl (apply -f), so that no file makes either of them hang or grow without limit.

YAML aliases turn a file of a few hundred bytes into a graph of billions of values ("billion
laughs") or a cycle (`&a [*a]`); PyYAML builds such a graph cheaply, with shared nodes, but
anything that walks it as a tree (validation, copying, msgpack) does exponential work. So the
composer's depth is bounded while parsing, and `shape_problem` walks a decoded document
iteratively, counting each value every time an alias reaches it, and stops at `MAX_NODES`.

A leaf module: it imports only yaml and json.
"""

from __future__ import annotations

import json

import yaml

# A Pod is ~10 levels deep; 200,000 values is 100 times a large real manifest.
MAX_DEPTH = 64
MAX_NODES = 200_000


class Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a silently lost value is a lost field), keeps
    timestamps as strings, as kubectl's YAML-to-JSON conversion does, and refuses nesting
    deeper than `MAX_DEPTH` before the composer's recursion reaches Python's limit."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._checked: dict[int, yaml.Node] = {}  # holds the nodes: ids stay unique
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        # The composer recurses once per level: stop early rather than at RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # The first flatten of a node comes before merge keys (`<<`) rewrite its pairs, and
        # pairs a merge brings in may legitimately be overridden: check the node as written.
        if id(node) not in self._checked:
            self._checked[id(node)] = node
            seen: set[object] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {_fmt_key(key)}",
                        key_node.start_mark,
                    )
                seen.add(key)
        super().flatten_mapping(node)


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _fmt_key(key: object) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return repr(key)


def load_all(text: str | bytes) -> list[object]:
    """Every document of a YAML stream (None for an empty one). Raises what
    `describe_error` explains: yaml.YAMLError, RecursionError, ValueError, OverflowError."""
    return list(yaml.load_all(text, Loader=Loader))


LOAD_ERRORS = (yaml.YAMLError, RecursionError, ValueError, OverflowError)
"""What `load_all` raises for bad input."""


def describe_error(exc: Exception) -> str:
    """One line for a load error: "invalid YAML at line 3:5: found duplicate key "a""."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        if mark is not None:
            return f"invalid YAML at line {mark.line + 1}:{mark.column + 1}: {what}"
        return f"invalid YAML: {what}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f"invalid YAML at character {exc.position}: {exc.reason}"
    if isinstance(exc, RecursionError):
        return "invalid YAML: nested too deeply"
    return f"invalid YAML: {exc}"


def shape_problem(obj: object) -> str | None:
    """Why `obj` is too deep or too big to walk (YAML aliases can build cycles and
    exponential fan-out), or None. Iterative: this is what makes a recursive walk of a
    document that passed it safe."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return f"Too many values: must have at most {MAX_NODES} (after expanding aliases)"
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return f"Too deep: must be nested at most {MAX_DEPTH} levels"
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return None
