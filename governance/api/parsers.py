"""Safe JSON for everything that arrives from outside: the pipeline API and SCIM bodies.

Python's `json` accepts documents PostgreSQL cannot store and that crash code downstream:
  - a NUL character (`\\u0000`): text and jsonb columns refuse it (a DataError, so a 500);
  - an unpaired surrogate (`\\ud800` alone): not Unicode at all, so encoding it as UTF-8 for the
    database fails (a UnicodeEncodeError, so a 500);
  - deep nesting: the C decoder recurses once per level and raises RecursionError (a 500), and
    anything that walks the document afterwards recurses too;
  - numbers beyond a float's range (`1e400`): parsed as infinity, which JSON cannot write back.
`load_json` refuses each of these with `UnsafeJSON` naming the problem and where it is, before any
serializer, adapter or query sees the document. `SafeJSONParser` is the DRF face of it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

# Deep enough for any real document (a release request nests four levels), shallow enough that
# no walk over it can come near Python's recursion limit.
MAX_DEPTH = 32

# A JSON string, including one left unterminated at the end of the text. Every alternative
# consumes at least one character and the loop can only stop at a quote or the end, so the
# pattern never backtracks: the scan stays linear even on hostile input such as `"\"\"\"...`.
_STRING = re.compile(r'"(?:[^"\\]+|\\.?)*(?:"|\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# After json.loads has joined valid pairs (\ud83d\ude80 → 🚀), any surrogate left is unpaired.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class TextProblem:
    """Why a piece of text cannot be stored: a stable `code` and the words for people."""

    code: str
    what: str

    @property
    def message(self) -> str:
        return f"Contains {self.what}."

    @property
    def key_message(self) -> str:
        return f"A key contains {self.what}."


NUL_CHARACTER = TextProblem("nul_character", "a NUL character (\\u0000), which cannot be stored")
LONE_SURROGATE = TextProblem(
    "lone_surrogate", "an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
)


class UnsafeJSON(ValueError):
    """A well-formed JSON document refused for what it holds; `path` locates the problem."""

    def __init__(self, code: str, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


def text_problem(text: str) -> TextProblem | None:
    """What makes `text` unstorable in PostgreSQL (NUL, lone surrogate), or None when it is fine."""
    if "\x00" in text:
        return NUL_CHARACTER
    if _SURROGATE.search(text):
        return LONE_SURROGATE
    return None


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON `text`, counted without parsing or recursing.

    Strings are removed first, so brackets inside them do not count; the running depth is then
    a prefix sum over the remaining brackets, computed in C by `accumulate`.
    """
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    return max(accumulate(_STEP[bracket] for bracket in brackets), default=0)


def load_json(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON `text`: `UnsafeJSON` for what must not be stored, ValueError if malformed."""
    too_deep = f"The JSON body nests arrays and objects deeper than {max_depth} levels."
    if nesting_depth(text) > max_depth:
        raise UnsafeJSON("nesting_too_deep", too_deep)
    try:
        document = json.loads(text, parse_constant=strict_constant)
    except RecursionError:
        # Unreachable after the scan above; kept so a scanner bug can never become a 500.
        raise UnsafeJSON("nesting_too_deep", too_deep) from None
    _check_values(document)
    return document


def _check_values(document: Any) -> None:
    """Refuse unstorable text in any key or string, and non-finite numbers, depth-first in order.

    An explicit stack rather than recursion: the depth is already bounded, but a walk that cannot
    recurse needs no argument about it.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key in node:
                problem = text_problem(key)
                if problem:
                    raise UnsafeJSON(problem.code, problem.key_message, path)
            stack.extend((value, (*path, key)) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            children = ((value, (*path, str(index))) for index, value in enumerate(node))
            stack.extend(reversed(list(children)))
        elif isinstance(node, str):
            problem = text_problem(node)
            if problem:
                raise UnsafeJSON(problem.code, problem.message, path)
        elif isinstance(node, float) and not math.isfinite(node):
            raise UnsafeJSON(
                "number_out_of_range", "A number is too large to represent as JSON.", path
            )


class RefusedBody(exceptions.ParseError):
    """A 400 for a JSON body refused by `load_json`, carrying the field it happened in.

    `fields` nests like DRF's own validation errors (`{"evidence": {"0": {"summary": [...]}}}`),
    so clients read one shape whichever layer refused their input.
    """

    def __init__(self, error: UnsafeJSON) -> None:
        where = ".".join(error.path)
        message = f"Invalid input. {where}: {error.message}" if where else error.message
        super().__init__(message, code=error.code)
        self.message = message
        self.fields = _nest(error.path, error.message) if error.path else {}


def _nest(path: tuple[str, ...], message: str) -> dict:
    fields: dict = {path[-1]: [message]}
    for segment in reversed(path[:-1]):
        fields = {segment: fields}
    return fields


class SafeJSONParser(JSONParser):
    """DRF's JSONParser, refusing deep nesting, NUL, lone surrogates and infinite numbers."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            return load_json(stream.read().decode(encoding))
        except UnsafeJSON as exc:
            raise RefusedBody(exc) from None
        except ValueError as exc:
            # Malformed JSON or bytes that are not text in the declared charset.
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
