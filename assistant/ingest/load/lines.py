"""Line breaks that only wrap a Chinese sentence, in PDF text and in OCR's lines."""

from __future__ import annotations

import re

# A PDF's text breaks every line where the layout wrapped it. In Chinese the break falls between two
# characters of one sentence (often of one word: "物流\n成本"), so sentences, quotes and jieba's
# words would all be cut at it. A break is a wrap when its line fills the page's usual width and
# runs on from a Chinese character into another; short lines (titles, a paragraph's last line) and
# lines that end a sentence keep their break. English wraps stay: the sentence splitter reads them.
WRAP_FROM = re.compile(r"[\u3400-\u9fff\uf900-\ufaff，、：“‘《（]")  # the line's last character
WRAP_TO = re.compile(r"^(?:[\u3400-\u9fff\uf900-\ufaff“‘《（]|\d(?!\d*[.．、)）]))")  # not a numbered item
FULL_LINE = 0.8  # of the page's usual line width (its 90th percentile)


def wraps(line: str, width: float, full: float, following: str) -> bool:
    """Whether the break after `line` (of `width`, the page's full width being `full`) only wraps a sentence."""
    return width >= full and bool(WRAP_FROM.fullmatch(line[-1:])) and bool(WRAP_TO.match(following))


def full_width(widths: list[float]) -> float:
    return FULL_LINE * sorted(widths)[int(0.9 * (len(widths) - 1))]


def _display_width(line: str) -> int:
    return sum(2 if "\u3000" <= ch <= "\uffef" else 1 for ch in line)


def join_wrapped_lines(page: str) -> str:
    """`page` with the line breaks inside wrapped Chinese sentences removed (see `WRAP_FROM`), in linear time."""
    lines = page.split("\n")
    if len(lines) < 3:
        return page
    widths = [_display_width(line.rstrip()) for line in lines]
    full = full_width(widths)
    # Each output line is kept as its pieces and joined once: a page can be one long wrapped paragraph.
    joined = [[lines[0]]]
    for width, line in zip(widths, lines[1:]):
        previous = joined[-1][-1].rstrip()
        if wraps(previous, width, full, line.lstrip()):
            joined[-1][-1] = previous
            joined[-1].append(line.lstrip())
        else:
            joined.append([line])
    return "\n".join("".join(pieces) for pieces in joined)
