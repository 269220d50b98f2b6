"""Turn saved web pages into one clean article body with its title, author and date.

Saved pages carry navigation, view counts, sidebars of other headlines, footers and, when a
page was saved from a reader view, the article body twice. Two cases are handled:

* HTML: trafilatura finds the main content and metadata. A WeChat article page (公众号文章) is read
  from its own layout instead: its body is in #js_content (hidden until its script runs), its date
  only in a script (`var ct`, a Unix time), its account name beside the author.
* Text saved from a browser: the article is the longest run of paragraphs the page repeats;
  one copy of it is kept and the chrome around it dropped. A text without such a repeated
  run is an ordinary article and is left untouched.
"""

from __future__ import annotations

import datetime
import re
from collections import defaultdict
from dataclasses import dataclass

_DATE = re.compile(r"((?:19|20)\d{2})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_BYLINE = re.compile(r"^(?:文\s*[丨|｜/:：]|作者\s*[丨|｜:：]|撰文\s*[丨|｜:：]|By\s+)\s*(.{1,60})$", re.I)
_META_AUTHOR = re.compile(r"""<meta[^>]+name=["']author["'][^>]+content=["']([^"']+)""", re.I)

# A repeated run shorter than this is a repeated sidebar item, not a duplicated article body.
_MIN_BODY_CHARS = 400
_MIN_BODY_LINES = 3


@dataclass
class Page:
    text: str
    title: str = ""
    author: str = ""
    date: str = ""
    source: str = ""


def find_date(text: str) -> str:
    m = _DATE.search(text)
    return f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}" if m else ""


def drop_repeated_paragraphs(text: str) -> str:
    """Keep the first copy of every paragraph (pages that render their body twice)."""
    seen: set[str] = set()
    kept = []
    for para in re.split(r"\n\s*\n|\n", text):
        key = re.sub(r"\s+", " ", para).strip()
        if key and key not in seen:
            seen.add(key)
            kept.append(para.strip())
    return "\n\n".join(kept)


def extract_html(html: str) -> Page:
    """Main article text and metadata of an HTML page (empty text when nothing looks like an article)."""
    if _WECHAT.search(html) and (page := _wechat_article(html)) is not None:
        return page
    import trafilatura

    # Not trafilatura's `deduplicate`: its cache is process-wide and drops text seen in other documents.
    found = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, include_tables=True
    )
    if found is None:
        return Page(text="")
    data = found if isinstance(found, dict) else found.as_dict()
    author = data.get("author") or ""
    if not author and (m := _META_AUTHOR.search(html)):
        author = m.group(1).strip()
    return Page(
        text=drop_repeated_paragraphs(data.get("text") or ""),
        title=(data.get("title") or "").strip(),
        author=author,
        date=data.get("date") or "",
        source=data.get("url") or data.get("sitename") or "",
    )


_WECHAT = re.compile(r"""id=["']js_content["']""")
_WECHAT_TIME = re.compile(r"""\bvar\s+ct\s*=\s*["']?(\d{9,11})""")
_WECHAT_VAR = r"""\bvar\s+{}\s*=\s*(?:htmlDecode\()?["']([^"'\n]{{1,300}})["']"""
_BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "section", "div", "tr", "br", "figcaption")
# WeChat's times are China Standard Time: an article posted at 00:30 there is dated that day.
_CHINA = datetime.timezone(datetime.timedelta(hours=8))


def _wechat_article(html: str) -> Page | None:
    """A WeChat article page's body (#js_content, one paragraph a block), title, author or account, and
    date; None when the page has no such body after all."""
    import lxml.html

    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return None
    body = tree.get_element_by_id("js_content", None)
    if body is None:
        return None
    for element in body.iter(*_BLOCKS):
        element.tail = "\n" + (element.tail or "")
    text = "\n\n".join(line for line in (re.sub(r"\s+", " ", part).strip() for part in body.text_content().split("\n"))
                        if line)

    def meta(attribute: str, name: str) -> str:
        found = tree.xpath(f"//meta[@{attribute}=$name]/@content", name=name)
        return str(found[0]).strip() if found else ""

    def var(name: str) -> str:
        m = re.search(_WECHAT_VAR.format(name), html)
        return m.group(1).strip() if m else ""

    heading = tree.get_element_by_id("activity-name", None)
    title = meta("property", "og:title") or var("msg_title") or (heading.text_content().strip() if heading is not None else "")
    account = tree.get_element_by_id("js_name", None)
    author = meta("name", "author") or var("nickname") or (account.text_content().strip() if account is not None else "")
    date = ""
    if m := _WECHAT_TIME.search(html):
        date = datetime.datetime.fromtimestamp(int(m.group(1)), _CHINA).date().isoformat()
    return Page(text=text, title=title, author=author, date=date,
                source=meta("property", "og:url") or var("msg_link"))


def clean_saved_text(text: str) -> Page | None:
    """The article inside a page saved as text, or None when the text is not such a page."""
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    run = _longest_repeated_run(lines)
    if run is None:
        return None
    first, second, length = run
    body = lines[first : first + length]
    header = lines[:first]
    author = ""
    if body and (m := _BYLINE.match(body[0])):
        author = m.group(1).strip()
        body = body[1:]
    # The title is the header line that the page prints again before the second copy.
    later = set(lines[first + length : second])
    candidates = [h for h in header if h in later and not _DATE.search(h) and not h.isdigit()]
    title = max(candidates, key=len, default=header[0] if header else "")
    if not author:
        author = next((m.group(1) for h in header if (m := _BYLINE.match(h))), "")
    return Page(text="\n\n".join(body), title=title, author=author, date=find_date("\n".join(header)))


_RUN_BUDGET_PER_LINE = 50


def _longest_repeated_run(lines: list[str]) -> tuple[int, int, int] | None:
    """(first start, second start, length) of the repeated run of lines with the most text."""
    seen: dict[str, list[int]] = defaultdict(list)
    best: tuple[int, int, int, int] | None = None  # chars, i, j, length
    # Comparisons of lines in all: a file of one line repeated would otherwise compare every line with
    # every later one. A saved page holds a few thousand lines; past the budget the best run found stands.
    budget = _RUN_BUDGET_PER_LINE * len(lines) + 100_000
    for j, line in enumerate(lines):
        for i in seen[line][:20]:  # cap the pairs so pages of repeated buttons stay linear
            if i > 0 and lines[i - 1] == lines[j - 1]:
                continue  # not the start of a run
            k = 0
            while j + k < len(lines) and i + k < j and lines[i + k] == lines[j + k] and budget > 0:
                k += 1
                budget -= 1
            chars = sum(len(line) for line in lines[i : i + k])
            if best is None or chars > best[0]:
                best = (chars, i, j, k)
        seen[line].append(j)
    if best is None or best[0] < _MIN_BODY_CHARS or best[3] < _MIN_BODY_LINES:
        return None
    return best[1], best[2], best[3]
