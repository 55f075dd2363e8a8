"""Where in a policy's YAML things are: a character of a scalar value, a key given twice.

A CEL syntax error names a line and column of the condition as the engine compiled it: after
YAML folded a `>` block into one line, or read a `|` block, a quoted string or a plain scalar.
People fix the file, so messages must name the file's own line and column. `source_position`
maps an offset in the (stripped) value back to the line and column of the document, 1-based.
`first_repeated_key` finds a key whose earlier value YAML would silently drop.
"""

from __future__ import annotations

import yaml


def source_position(source: str, node: yaml.ScalarNode, offset: int) -> tuple[int, int]:
    """The document's (line, column) of character `offset` of `node.value.strip()`."""
    offset += len(node.value) - len(node.value.lstrip())
    block = node.style in ("|", ">")
    places = _block_places(source, node) if block else _flow_places(source, node)
    if not places:
        return node.start_mark.line + 1, node.start_mark.column + 1
    line, column = places[min(offset, len(places) - 1)]
    return line + 1, column + 1


def _block_places(source: str, node: yaml.ScalarNode) -> list[tuple[int, int]]:
    """Each character of a block scalar's value with its (line, column), 0-based. The value
    joins the content lines, indentation removed, with one separator (a space when folded, a
    newline when literal), which maps to the end of the line it follows."""
    lines = source.splitlines()
    first = node.start_mark.line + 1  # the content starts below the `>` or `|` indicator
    last = min(node.end_mark.line, len(lines))
    content = [(number, lines[number]) for number in range(first, last) if lines[number].strip()]
    if not content:
        return []
    indent = min(len(text) - len(text.lstrip(" ")) for _, text in content)
    places: list[tuple[int, int]] = []
    for number, text in content:
        body = text[indent:].rstrip()
        places += [(number, indent + i) for i in range(len(body))]
        places.append((number, indent + len(body)))  # the separator after this line
    return places


def _flow_places(source: str, node: yaml.ScalarNode) -> list[tuple[int, int]]:
    """A plain or quoted scalar: its characters in order, continuation lines folded into one
    space each; quotes skipped. Escapes in double quotes are rare in conditions and only shift
    the column on their line."""
    start, end = node.start_mark, node.end_mark
    text = source[start.index : end.index]
    line, column = start.line, start.column
    quoted = node.style in ("'", '"')
    places: list[tuple[int, int]] = []
    pending_space = False
    for index, char in enumerate(text):
        if char == "\n":
            line, column = line + 1, 0
            pending_space = True
            continue
        at = (line, column)
        column += 1
        if quoted and index in (0, len(text) - 1):
            continue
        if pending_space:
            if char in " \t":
                continue
            places.append(at)  # the folded space maps to the first character that follows
            pending_space = False
        places.append(at)
    if not quoted:
        places.append((line, column))  # the end, where an unfinished condition is reported
    return places


def first_repeated_key(root: yaml.Node | None) -> tuple[yaml.Node, yaml.Node] | None:
    """The first key given twice in one mapping, as (first, second) key nodes; None if none.

    YAML keeps a repeated key's last value and silently drops the earlier one: a second
    `rules:` would erase every rule above it, a second `stages:` a stage a reviewer can read.
    """
    repeats, seen_nodes, pending = [], set(), [root]
    while pending:
        node = pending.pop()
        # An alias is the node it names: walk each node once (a YAML bomb stays cheap).
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, yaml.Node] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in keys:
                    repeats.append((keys[key.value], key))
                elif isinstance(key, yaml.ScalarNode):
                    keys[key.value] = key
                pending.append(value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
    # The walk's order is not the document's: report the repeat a reader meets first.
    return min(repeats, key=lambda pair: pair[1].start_mark.index, default=None)
