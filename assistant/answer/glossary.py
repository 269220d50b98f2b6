"""The names and terms of cross-border selling in English and Chinese, so that a question in one language
can be checked against passages in the other.

An English question about "Amazon FBA storage fees" over a Chinese library is answerable only by a
passage that names 亚马逊 (or Amazon) and FBA; a Chinese question about 虾皮 is answered by an English
passage about Shopee. Each entry is one name or term in the spellings a passage may use. Names
(platforms, programs, organisations, services) and places are what a question is about; terms (fees,
taxes, rates, rights) are what it asks of them. A passage that answers must name the names and terms,
and its document the places, in either language.

The built-in entries are below (`DEFAULT`); a team adds its own (brands, suppliers, its platforms'
fees) in a file named by the `glossary` setting, one entry a line, read by `Glossary.load`:

    # kind: spelling | spelling | …
    name: Anker | 安克
    place: Warsaw | 华沙
    term: return insurance | 退货险

English spellings match whole words, case-insensitively, except acronyms and names that are also
plain words (US, LINE, Wish): those match only as written. Chinese ones match anywhere in the text.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

NAMES: tuple[tuple[str, ...], ...] = (
    # platforms and marketplaces
    ("Amazon", "亚马逊"), ("FBA", "Fulfillment by Amazon", "亚马逊物流"), ("FBM",), ("eBay", "易贝", "亿贝"),
    ("AliExpress", "速卖通"), ("Alibaba", "阿里巴巴"), ("Shopee", "虾皮"), ("Lazada", "来赞达"), ("Temu", "拼多多海外版"),
    ("SHEIN", "Shein", "希音"), ("Walmart", "沃尔玛"), ("Etsy",), ("Wish",), ("Shopify",), ("Mercado Libre", "美客多"),
    ("Ozon",), ("Allegro",), ("Wildberries",), ("Noon",), ("Jumia",), ("Coupang", "酷澎"), ("Rakuten", "乐天"),
    ("Zalando",), ("Cdiscount",), ("Flipkart",), ("Tokopedia",), ("Taobao", "淘宝"), ("Tmall", "天猫"),
    ("JD.com", "京东"), ("Pinduoduo", "拼多多"), ("TikTok Shop", "TikTok小店"), ("Douyin", "抖音"),
    ("Xiaohongshu", "小红书"), ("WeChat", "微信"), ("Weibo", "微博"), ("Facebook", "脸书"), ("Instagram",),
    ("YouTube", "油管"), ("Google", "谷歌"), ("Pinterest",), ("Twitter", "推特"), ("LINE",), ("WhatsApp",),
    ("PayPal", "贝宝"), ("Stripe",), ("Payoneer", "派安盈"), ("DHL",), ("FedEx", "联邦快递"), ("UPS",),
    ("USPS", "美国邮政"), ("Royal Mail", "英国皇家邮政"), ("Cainiao", "菜鸟"),
    # services a question is about
    ("overseas warehouse", "海外仓"), ("sea freight", "ocean freight", "海运"), ("air freight", "空运"),
    ("dropshipping", "一件代发"),
)

# Places are often only implied by a passage ("the region", "the election"): a document names them.
PLACES: tuple[tuple[str, ...], ...] = (
    ("United States", "American", "US", "USA", "America", "美国"),
    ("United Kingdom", "British", "UK", "Britain", "英国"), ("European Union", "EU", "欧盟"),
    ("Europe", "European", "欧洲"), ("Germany", "German", "德国"), ("France", "French", "法国"),
    ("Italy", "Italian", "意大利"), ("Spain", "Spanish", "西班牙"), ("Poland", "Polish", "波兰"),
    ("Netherlands", "Dutch", "荷兰"), ("Japan", "Japanese", "日本"), ("South Korea", "Korean", "Korea", "韩国"),
    ("China", "Chinese", "中国"), ("Hong Kong", "香港"), ("Taiwan", "台湾"), ("India", "Indian", "印度"),
    ("Russia", "Russian", "俄罗斯"), ("Canada", "Canadian", "加拿大"), ("Mexico", "Mexican", "墨西哥"),
    ("Brazil", "Brazilian", "巴西"), ("Australia", "Australian", "澳大利亚", "澳洲"), ("Southeast Asia", "东南亚"),
    ("Indonesia", "Indonesian", "印度尼西亚", "印尼"), ("Thailand", "Thai", "泰国"), ("Vietnam", "Vietnamese", "越南"),
    ("Malaysia", "Malaysian", "马来西亚"), ("Philippines", "Filipino", "菲律宾"), ("Singapore", "Singaporean", "新加坡"),
    ("Middle East", "中东"), ("Saudi Arabia", "Saudi", "沙特"), ("UAE", "阿联酋"), ("Africa", "African", "非洲"),
    ("Latin America", "拉美", "拉丁美洲"), ("Turkey", "Turkish", "土耳其"), ("Shenzhen", "深圳"), ("Guangzhou", "广州"),
    ("Yiwu", "义乌"), ("Shanghai", "上海"), ("Beijing", "北京"), ("Los Angeles", "洛杉矶"), ("New York", "纽约"),
    ("London", "伦敦"), ("Hamburg", "汉堡"),
)

TERMS: tuple[tuple[str, ...], ...] = (
    ("VAT", "value added tax", "增值税"), ("tariff", "tariffs", "import duty", "customs duty", "关税"),
    ("customs", "customs clearance", "海关", "清关"), ("trademark", "trademarks", "商标"),
    ("patent", "patents", "专利"), ("copyright", "版权"), ("storage fee", "storage fees", "仓储费"),
    ("commission", "commissions", "referral fee", "佣金"), ("return rate", "退货率"),
    ("conversion rate", "转化率"), ("refund rate", "退款率"), ("click-through rate", "CTR", "点击率"),
    ("daily active users", "DAU", "日活"), ("monthly active users", "MAU", "月活"),
    ("GMV", "gross merchandise value", "成交总额", "商品交易总额"),
    ("founder", "founders", "co-founder", "founded by", "创始人", "创办人"), ("CEO", "chief executive", "首席执行官", "总裁"),
    ("revenue", "营收", "营业收入"), ("market share", "市场份额"), ("valuation", "估值"),
    ("listing fee", "listing fees", "上架费"), ("advertising cost", "广告费"),
)

_ASCII = re.compile(r"[\x00-\x7f]+")
_AS_WRITTEN = frozenset({"Wish", "Noon", "Stripe", "Turkey", "Allegro", "Prime"})
KINDS = ("name", "place", "term")
# A team's file: at most this many entries and characters a spelling. Every question is read for every
# spelling, so the file bounds the cost of every question.
MAX_ENTRIES = 2000
MAX_SPELLING_CHARS = 60


class GlossaryError(ValueError):
    """A glossary file that cannot be read; the message names the file, the line and what to do."""


class Glossary:
    """Entries by kind; every spelling (lower-cased) leads to its entry."""

    def __init__(self, names: tuple[tuple[str, ...], ...], places: tuple[tuple[str, ...], ...],
                 terms: tuple[tuple[str, ...], ...]):
        self.names, self.places, self.terms = names, places, terms
        self._entries = {s.lower(): e for e in names + places + terms for s in e}
        self._places, self._terms = frozenset(places), frozenset(terms)
        self._by_length = sorted((s for e in names + places + terms for s in e), key=len, reverse=True)

    @classmethod
    def load(cls, path: str | Path) -> Glossary:
        """The built-in entries and those of the file at `path` (see the module note for its lines)."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise GlossaryError(f"{path}: cannot read the glossary ({exc}); fix the file or the glossary "
                                "setting") from None
        added: dict[str, list[tuple[str, ...]]] = {k: [] for k in KINDS}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, _, rest = line.partition(":")
            spelled = tuple(dict.fromkeys(s.strip() for s in rest.split("|") if s.strip()))
            where = f"{path}, line {number}"
            if kind.strip().lower() not in KINDS or not spelled:
                raise GlossaryError(f"{where}: write 'name:', 'place:' or 'term:' and the spellings separated by "
                                    f"'|' (got {line[:60]!r})")
            if any(len(s) > MAX_SPELLING_CHARS for s in spelled):
                raise GlossaryError(f"{where}: a spelling is longer than {MAX_SPELLING_CHARS} characters")
            added[kind.strip().lower()].append(spelled)
        if sum(map(len, added.values())) > MAX_ENTRIES:
            raise GlossaryError(f"{path}: more than {MAX_ENTRIES} entries; keep the names your questions use")
        return cls(DEFAULT.names + tuple(added["name"]), DEFAULT.places + tuple(added["place"]),
                   DEFAULT.terms + tuple(added["term"]))

    def spellings(self, term: str) -> tuple[str, ...]:
        """The spellings of `term`'s entry (itself alone when the glossary does not know it)."""
        return self._entries.get(term.lower(), (term,))

    def known(self, term: str) -> bool:
        return term.lower() in self._entries

    def is_place(self, name: str) -> bool:
        return self._entries.get(name.lower()) in self._places

    def is_term(self, name: str) -> bool:
        return self._entries.get(name.lower()) in self._terms

    def named_in(self, text: str, spelling: str) -> bool:
        """Whether `text` names `spelling`'s entry in any of its spellings."""
        return any(_pattern(s).search(text) for s in self.spellings(spelling))

    def names_a_place(self, text: str) -> bool:
        """Whether `text` names any of the places."""
        lowered = text.lower()
        # A substring test first (C speed), the word-boundary pattern only for the few spellings found.
        return any(s.lower() in lowered and _pattern(s).search(text) for entry in self.places for s in entry)

    def found_in(self, question: str) -> list[str]:
        """The entries a question names, in its order, each by the spelling found; longer spellings are
        taken first, so that "TikTok Shop" is one name, not TikTok and a shop. English spellings count only
        as written: a capitalised Amazon or France names what the question is about; "bought it on amazon"
        or "a europe console" in a review-style question does not."""
        found: list[tuple[int, int, str]] = []
        lowered = question.lower()
        for spelling in self._by_length:
            if spelling.lower() not in lowered:
                continue
            pattern = _as_written(spelling) if _ASCII.fullmatch(spelling) else _pattern(spelling)
            for m in pattern.finditer(question):
                if not any(a < m.end() and m.start() < b for a, b, _ in found):
                    found.append((m.start(), m.end(), m.group(0)))
        return list(dict.fromkeys(text for _, _, text in sorted(found)))


DEFAULT = Glossary(NAMES, PLACES, TERMS)


_read: dict[str, tuple[float, Glossary]] = {}  # path -> (modification time, glossary) of its last good read
_read_lock = threading.Lock()


def configured(path: str) -> Glossary:
    """The glossary a `glossary` setting names (DEFAULT when empty), read again when the file changes. A file
    broken by an edit while the server runs keeps its last good version in use, with a warning in the log
    (`Assistant` refuses a broken one when it opens, naming the file and line)."""
    if not path:
        return DEFAULT
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        mtime = -1.0
        failure: GlossaryError | None = GlossaryError(f"{path}: cannot read the glossary ({exc.strerror}); fix the "
                                                      "file or the glossary setting")
    else:
        failure = None
    with _read_lock:
        last = _read.get(path)
        if last is not None and last[0] == mtime:
            return last[1]
        try:
            if failure is not None:
                raise failure
            glossary = Glossary.load(path)
        except GlossaryError as exc:
            if last is None:
                raise
            log.warning("%s; the glossary read before stays in use", exc)
            _read[path] = (mtime, last[1])
            return last[1]
        _read[path] = (mtime, glossary)
        return glossary


@lru_cache(maxsize=1024)
def _as_written(spelling: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(spelling)}(?![A-Za-z0-9])")


@lru_cache(maxsize=4096)
def _pattern(spelling: str) -> re.Pattern:
    if _ASCII.fullmatch(spelling):  # a whole word ("US" is not in "USB"), whatever the case unless it is a word too
        as_written = spelling.isupper() or spelling in _AS_WRITTEN
        return re.compile(rf"(?<![A-Za-z0-9]){re.escape(spelling)}(?![A-Za-z0-9])", 0 if as_written else re.I)
    return re.compile(re.escape(spelling))
