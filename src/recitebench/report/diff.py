"""The edit script between a target and a recitation, at character level, for the reports and the explorer.

The alignment is rapidfuzz's Levenshtein opcodes (a minimal edit script): one wrong character marks one character,
not the rest of the poem. U+FFFD in a recitation that its target lacks marks bytes the model produced that are not
UTF-8.
"""

from __future__ import annotations

import html

from rapidfuzz.distance import Levenshtein

from ..text import BIDI_CONTROLS  # each is shown as a visible code, not obeyed

BAD_BYTES = "\ufffd"


def visible(s: str) -> str:
    """Plain text with every bidirectional control written out as [U+XXXX] (Markdown, tables)."""
    return BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", s)


def edit_script(target: str, pred: str) -> list[tuple[str, str, str]]:
    """Runs of (op, target text, recitation text); op is equal, replace, delete (target only) or insert."""
    return [
        (op.tag, target[op.src_start:op.src_end], pred[op.dest_start:op.dest_end])
        for op in Levenshtein.opcodes(target, pred)
    ]


def compact_ops(target: str, pred: str) -> list[list[int]]:
    """The edit script without its equal runs, as [code, i1, i2, j1, j2] (codes r/d/i -> 0/1/2): what the explorer
    embeds per wrong poem to draw the same diff in the browser."""
    code = {"replace": 0, "delete": 1, "insert": 2}
    return [
        [code[op.tag], op.src_start, op.src_end, op.dest_start, op.dest_end]
        for op in Levenshtein.opcodes(target, pred)
        if op.tag != "equal"
    ]


def _esc(s: str) -> str:
    escaped = html.escape(s).replace("\n", "<br>")
    mark = "<mark class=ctl title='bidirectional control'>U+{:04X}</mark>"
    return BIDI_CONTROLS.sub(lambda m: mark.format(ord(m.group())), escaped)


def _pred_html(s: str) -> str:
    mark = f"<mark class=bytes title='not UTF-8: bytes the model produced'>{BAD_BYTES}</mark>"
    return _esc(s).replace(BAD_BYTES, mark)


def diff_html(target: str, pred: str) -> tuple[str, str]:
    """(target, recitation) as HTML: deleted and replaced target text in <del>, inserted and replacing text in <ins>."""
    t, p = [], []
    for op, a, b in edit_script(target, pred):
        if op == "equal":
            t.append(_esc(a))
            p.append(_pred_html(b))
            continue
        if a:
            t.append(f"<del>{_esc(a)}</del>")
        if b:
            p.append(f"<ins>{_pred_html(b)}</ins>")
    return "".join(t), "".join(p)


def diff_text(target: str, pred: str) -> str:
    """One line in wdiff notation for Markdown: [-target only-]{+recitation only+}; line breaks shown as ' / '."""
    out = []
    for op, a, b in edit_script(target, pred):
        if op == "equal":
            out.append(a)
        else:
            out.append((f"[-{a}-]" if a else "") + (f"{{+{b}+}}" if b else ""))
    return visible("".join(out).replace("\n", " / "))
