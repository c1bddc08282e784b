"""COMPATIBILITY.md is written by several suites; each owns one section of it.

A section lies between `<!-- BEGIN name -->` and `<!-- END name -->`. Writing a section
replaces only its own lines: the other suites' tables and the hand-written notes stay.
A missing section is appended at the end. Stdlib only.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(ROOT, "COMPATIBILITY.md")
TITLE = "# Compatibility"


def replace_section(name, lines, path=PATH):
    """Replaces section `name` of COMPATIBILITY.md with `lines` (a list of str)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    try:
        with open(path) as f:
            text = f.read().splitlines()
    except FileNotFoundError:
        text = [TITLE, ""]
    block = [begin] + list(lines) + [end]
    if begin in text and end in text and text.index(begin) < text.index(end):
        i, j = text.index(begin), text.index(end)
        text = text[:i] + block + text[j + 1 :]
    else:
        if text and text[-1] != "":
            text.append("")
        text += block
    with open(path, "w") as f:
        f.write("\n".join(text) + "\n")
    return path
