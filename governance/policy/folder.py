"""A policy kept in git as a folder of YAML files, and the one document the engine reads.

Teams split a large policy by concern (`10-production.yaml`, `20-sox.yaml`, `90-emergency.yaml`)
and review each change as a pull request. Every `*.yaml` file of the folder (sorted by name, not
recursive) holds part of one policy: `rules` from all files concatenate in file order; any other
top-level section (`emergency`, `slas`, ...) may appear in one file only.

`combine` writes the files as one document that stays readable: each file's part follows a
`# --- file: NAME ---` marker, which is how `split` gives the files back. The engine reports
places in that document; `locate` maps them back to `file:line:column`, as a compiler would.
One file alone is used exactly as written (no marker), so a policy typed in the editor and
exported as one `policy.yaml` imports to the same checksum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from governance.policy import engine

MARKER = "# --- file: {name} ---"
_MARKER = re.compile(r"^# --- file: (?P<name>[^/\\]+\.yaml) ---$")
# The first lines of a combined document: fixed, so combine(split(source)) == source.
HEADER = "# One policy from {count} files; `manage.py policy_export` writes them back.\nrules:"
SINGLE_FILE = "policy.yaml"
# Rule items sit at this indent in the combined document, whatever each file used.
ITEM_INDENT = 2
_LINE_MENTION = re.compile(r"\bline (\d+)(?:, column (\d+))?")


@dataclass(frozen=True)
class PolicyFile:
    name: str
    text: str


@dataclass(frozen=True)
class Problem:
    """One error at a place in a file (line and column 1-based; None when unknown)."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        place = self.path
        if self.line is not None:
            place += f":{self.line}:{self.column or 1}"
        return f"{place}: {self.message}"


class FolderError(ValueError):
    """The folder cannot make a valid policy; `problems` say where, file by file."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True)
class Origin:
    """Where a line of the combined document came from, and how far it moved right."""

    name: str
    line: int
    shift: int = 0


@dataclass
class Combined:
    source: str
    files: list[str]
    # Index i: the origin of line i + 1 of `source`; None for the header and markers.
    origins: list[Origin | None] = field(default_factory=list)


@dataclass
class _Parts:
    """A file cut at its top-level keys: comments before them, its rule items, the rest."""

    preamble: list[tuple[int, str]]
    items: list[tuple[int, str]]
    item_indent: int
    rest: list[tuple[int, str]]
    sections: dict[str, int]  # other top-level keys -> their line (1-based)


# --- reading a folder and combining it ------------------------------------------------------


def read_folder(folder: Path) -> list[PolicyFile]:
    """The folder's `*.yaml` files in name order; FolderError when there are none."""
    if not folder.is_dir():
        raise FolderError([Problem(str(folder), "not a folder")])
    paths = sorted(p for p in folder.glob("*.yaml") if p.is_file())
    if not paths:
        raise FolderError([Problem(str(folder), "holds no *.yaml file")])
    return [PolicyFile(p.name, p.read_text(encoding="utf-8")) for p in paths]


def combine(files: list[PolicyFile]) -> Combined:
    """One policy document from the files; FolderError naming the file for what cannot be
    combined (YAML errors, a section defined in two files). The rules are not validated here."""
    if len(files) == 1:
        only = files[0]
        _cut(only)  # YAML errors are reported against the file
        count = len(only.text.splitlines())
        return Combined(only.text, [only.name], [Origin(only.name, n + 1) for n in range(count)])
    parts = {f.name: _cut(f) for f in files}
    _refuse_repeated_sections(parts)
    combined = Combined("", [f.name for f in files])
    lines = HEADER.format(count=len(files)).splitlines()
    combined.origins = [None] * len(lines)
    # All rule items first, under the one `rules:` key, then every other section.
    for name, part in parts.items():
        if part.items:
            shift = ITEM_INDENT - part.item_indent
            body = [(n, t, 0) for n, t in part.preamble] + [(n, t, shift) for n, t in part.items]
            _emit(lines, combined.origins, name, body)
    for name, part in parts.items():
        rest = part.rest if part.items else part.preamble + part.rest
        if rest:
            _emit(lines, combined.origins, name, [(n, t, 0) for n, t in rest])
    combined.source = "\n".join(lines) + "\n"
    return combined


def _emit(
    lines: list[str], origins: list[Origin | None], name: str, body: list[tuple[int, str, int]]
) -> None:
    """Append a file's lines under its marker, each moved right by its shift."""
    lines.append(MARKER.format(name=name))
    origins.append(None)
    for number, text, shift in body:
        moved, applied = _move(text, shift)
        lines.append(moved)
        origins.append(Origin(name, number, applied))


def _move(text: str, shift: int) -> tuple[str, int]:
    """`text` moved `shift` columns (left when negative, never past its first character)."""
    if not text.strip():
        return "", 0
    if shift >= 0:
        return " " * shift + text, shift
    spaces = len(text) - len(text.lstrip(" "))
    removed = min(spaces, -shift)
    return text[removed:], -removed


def _cut(policy_file: PolicyFile) -> _Parts:
    """Split one file at its top-level keys; FolderError for YAML a policy cannot be."""
    name, text = policy_file.name, policy_file.text
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = f"not valid YAML: {exc.problem or exc}"
        raise FolderError([Problem(name, message, *where)]) from None
    except yaml.YAMLError as exc:
        raise FolderError([Problem(name, f"not valid YAML: {exc}")]) from None
    numbered = list(enumerate(text.splitlines(), start=1))
    if root is None:
        return _Parts(_no_document_markers(numbered), [], 0, [], {})
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1
        raise FolderError([Problem(name, "must be a mapping of sections (rules: ...)", line, 1)])
    return _cut_sections(name, root, numbered)


def _cut_sections(name: str, root: yaml.MappingNode, numbered: list) -> _Parts:
    starts = [_section_start(numbered, key.start_mark.line) for key, _ in root.value]
    preamble = _no_document_markers(numbered[: starts[0]])
    parts = _Parts(preamble, [], 0, [], {})
    for index, (key, value) in enumerate(root.value):
        end = starts[index + 1] if index + 1 < len(starts) else len(numbered)
        span = numbered[starts[index] : end]
        if key.value != "rules":
            parts.rest += span
            parts.sections[str(key.value)] = key.start_mark.line + 1
        elif isinstance(value, yaml.SequenceNode) and value.value:
            if value.flow_style is True:
                message = "write 'rules' as a block list, one '- id: ...' item per line"
                raise FolderError([Problem(name, message, key.start_mark.line + 1, 1)])
            key_line = key.start_mark.line
            parts.items = [(n, t) for n, t in span if n - 1 > key_line]
            # The comments right above `rules:` stay above it, with the file's first comments.
            parts.preamble += [(n, t) for n, t in span if n - 1 < key_line]
            parts.item_indent = value.start_mark.column  # the first '-'
    return parts


def _section_start(numbered: list[tuple[int, str]], key_line: int) -> int:
    """A top-level key's section starts at the comment lines directly above it."""
    start = key_line
    while start > 0 and numbered[start - 1][1].startswith("#"):
        start -= 1
    return start


def _no_document_markers(numbered: list[tuple[int, str]]) -> list[tuple[int, str]]:
    # A `---` line would start a second document in the combined one.
    return [(n, t) for n, t in numbered if t.rstrip() not in ("---", "...")]


def _refuse_repeated_sections(parts: dict[str, _Parts]) -> None:
    first: dict[str, str] = {}
    problems = []
    for name, part in parts.items():
        for section, line in part.sections.items():
            if section in first:
                message = (
                    f"'{section}' is defined in {first[section]} and again in {name}; "
                    "it may appear in one file only"
                )
                problems.append(Problem(name, message, line, 1))
            else:
                first[section] = name
    if problems:
        raise FolderError(problems)


# --- validating, and mapping the engine's places back to files --------------------------------


@dataclass(frozen=True)
class Checked:
    combined: Combined
    rule_count: int


def check(files: list[PolicyFile], folder: str = "") -> Checked:
    """Combine and validate with the engine; FolderError with `file:line:column` problems."""
    try:
        combined = combine(files)
    except FolderError as exc:
        problems = [replace(p, path=_join(folder, p.path)) for p in exc.problems]
        raise FolderError(problems) from None
    try:
        rules = engine.parse(combined.source)
    except engine.PolicyError as exc:
        raise FolderError([locate(combined, exc, folder)]) from None
    return Checked(combined, len(rules))


def locate(combined: Combined, error: engine.PolicyError, folder: str = "") -> Problem:
    """The engine's error at its place in the file it came from; line numbers the message
    mentions are translated too, so nothing points into the combined document."""
    line = getattr(error, "line", None)
    column = getattr(error, "column", None)
    message = getattr(error, "message", None) or str(error)
    origin = _origin(combined, line)
    if origin is None:
        return Problem(folder or "policy", message)
    if column is not None:
        column = max(1, column - origin.shift)
    return Problem(
        _join(folder, origin.name), _relabel(message, combined), origin.line, column or 1
    )


def _origin(combined: Combined, line: int | None) -> Origin | None:
    if line is None or not 1 <= line <= len(combined.origins):
        return None
    return combined.origins[line - 1]


def _relabel(message: str, combined: Combined) -> str:
    def file_line(match: re.Match) -> str:
        origin = _origin(combined, int(match[1]))
        if origin is None:
            return match[0]
        place = f"line {origin.line}"
        if match[2]:
            place += f", column {max(1, int(match[2]) - origin.shift)}"
        return place if len(combined.files) == 1 else f"{origin.name} {place}"

    return _LINE_MENTION.sub(file_line, message)


def _join(folder: str, name: str) -> str:
    return str(Path(folder) / name) if folder else name


# --- writing a policy back out as files -------------------------------------------------------


def split(source: str) -> list[PolicyFile]:
    """The files a combined document came from; one `policy.yaml` holding `source` as it is
    when it has no markers (typed in the editor) or when splitting would not give it back."""
    if not any(_MARKER.match(text) for text in source.splitlines()):
        return [PolicyFile(SINGLE_FILE, source)]
    try:
        files = _split_at_markers(source)
        if combine(files).source == source:
            return files
    except FolderError:
        pass
    return [PolicyFile(SINGLE_FILE, source)]


def _split_at_markers(source: str) -> list[PolicyFile]:
    segments: list[tuple[str, list[str]]] = []
    for text in source.splitlines():
        match = _MARKER.match(text)
        if match:
            segments.append((match["name"], []))
        elif segments:
            segments[-1][1].append(text)
    rules: dict[str, list[str]] = {}
    rest: dict[str, list[str]] = {}
    for name, body in segments:
        (rules if _holds_rule_items(body) else rest).setdefault(name, []).extend(body)
    # In name order, as read_folder gives them, so that they combine in the same order.
    names = sorted({name for name, _ in segments})
    return [PolicyFile(name, _file_text(rules.get(name), rest.get(name, []))) for name in names]


def _holds_rule_items(body: list[str]) -> bool:
    """Rule items sit at ITEM_INDENT; other sections start with a key at the margin."""
    has_key = any(t and not t.startswith((" ", "#")) for t in body)
    item = " " * ITEM_INDENT + "-"
    return not has_key and any(t == item or t.startswith(item + " ") for t in body)


def _file_text(items: list[str] | None, rest: list[str]) -> str:
    lines: list[str] = []
    if items is not None:
        # The comments above the first rule item are the file's own preamble.
        head = 0
        while head < len(items) and (not items[head] or items[head].startswith("#")):
            head += 1
        lines = [*items[:head], "rules:", *items[head:]]
    return "\n".join(lines + rest) + "\n"


def write_folder(folder: Path, files: list[PolicyFile], *, clean: bool = False) -> list[str]:
    """Write `files` into `folder`; other `*.yaml` files there would join the policy on the
    next import, so they are removed when `clean`, refused otherwise. Returns removed names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {f.name for f in files}
    strays = sorted(p.name for p in folder.glob("*.yaml") if p.name not in names)
    if strays and not clean:
        message = (
            f"also holds {', '.join(strays)}, which would join the policy on import; "
            "remove them or pass --clean"
        )
        raise FolderError([Problem(str(folder), message)])
    for name in strays:
        (folder / name).unlink()
    for policy_file in files:
        (folder / policy_file.name).write_text(policy_file.text, encoding="utf-8")
    return strays
