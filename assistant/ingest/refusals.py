"""Why a file or link was not added, in Chinese: the Library view shows each reason in both languages.

The reasons themselves are written once, in English, where they are decided (the readers, the fetcher,
the library); this table gives each kind its Chinese words, matched on the English, the names of
settings and limits kept as they are (what a user sets). A reason no pattern knows gets a Chinese
sentence saying so, beside the English one.
"""

from __future__ import annotations

import re

_ZH: list[tuple[str, str]] = [
    (r"not a supported format|unsupported file type", "不支持的文件格式；请换成资料库支持的格式"),
    (r"^empty file", "空文件：请加入文字，或把它删除"),
    (r"binary data, not text", "这是二进制数据，不是文本：请删除，或改用正确的扩展名"),
    (r"larger than max_file_mb", "文件超过 max_file_mb 的大小上限：请拆分文件"),
    (r"encrypted PDF", "加密的 PDF：请另存一份没有密码的副本再上传"),
    (r"once unpacked", "解压后超过 100 MB（疑似压缩炸弹）：请拆分文件"),
    (r"max_file_chars", "提取出的文字超过 max_file_chars 的上限：请拆分成较小的文件"),
    (r"max_file_chunks", "提取出的段落超过 max_file_chunks 的上限：请拆分成较小的文件"),
    (r"read_seconds", "读取时间超过 read_seconds：请拆分文件，或调高 read_seconds"),
    (r"the reader stopped without a result", "读取进程意外退出（内存不足？）：请拆分或重新导出文件"),
    (r"corrupt or unsupported|not a readable|could not be read|malformed", "文件损坏或无法读取：请重新导出或另存后再上传"),
    (r"no text layer|no extractable text", "PDF 没有文字层（扫描件？），OCR 也没有读出文字"),
    (r"no text found|no valid JSON lines", "文件中没有可读的文字"),
    (r"belongs to another file|already belongs to", "文档 id 已属于资料库中的其他文件：请给记录使用自己的 id"),
    (r"already in the library as", "资料库中已有相同内容的文件"),
    (r"another file of this upload", "本次上传中有同名文件：请改名后重新上传"),
    (r"cannot read the file|cannot store", "无法读取或保存文件：请检查权限和磁盘"),
    (r"carries the IPv4 address|is a (loopback|private|link-local|multicast|reserved|unspecified|non-public) address",
     "链接指向本机或内网地址，已拒绝（除非 allowed_fetch_hosts 允许该主机）"),
    (r"only http and https", "只接受 http 和 https 链接"),
    (r"user name or password", "含用户名或密码的链接不会被抓取"),
    (r"control character|not a valid link|has no host name|longer than \d+ characters",
     "链接格式无效：请检查链接"),
    (r"could not be resolved", "无法解析链接的主机名：请检查链接"),
    (r"fetch_timeout", "抓取链接超时（fetch_timeout）：请稍后再试"),
    (r"max_fetch_mb", "页面超过 max_fetch_mb 的大小上限"),
    (r"HTTP (\d+)", "服务器返回 HTTP \\1：请确认链接能在浏览器中打开"),
    (r"redirects", "重定向次数过多：请使用浏览器最终打开的链接"),
    (r"not a web page, PDF or picture", "链接不是网页、PDF 或图片：请下载后上传文件"),
    (r"could not be fetched", "无法抓取这个页面：请检查链接"),
]
_PATTERNS = [(re.compile(p), zh) for p, zh in _ZH]


# What a limit cut from a file that was indexed (a reader's warnings), in Chinese; the same kind of table.
_UNITS = {"pages": "页", "slides": "张幻灯片", "rows": "行", "paragraphs": "段", "lines": "行"}
_CUTS_ZH: list[tuple[str, str]] = [
    (r"^read (\d+) of (\d+) (\w+): reading took longer than read_seconds \(([\d.]+) s\)",
     "读取超过 read_seconds（\\4 秒）后被停止：共 \\2 \\3，只读了前 \\1 \\3，其余未读：请拆分文件，或调高 read_seconds"),
    (r"^read the first (\d+) (\w+): reading took longer than read_seconds \(([\d.]+) s\)",
     "读取超过 read_seconds（\\3 秒）后被停止：只读了前 \\1 \\2，其余未读：请拆分文件，或调高 read_seconds"),
    (r"^read (\d+) of (\d+) (\w+): the reader stopped without a result",
     "读取进程意外退出（内存不足？）：共 \\2 \\3，只读了前 \\1 \\3，其余未读：请拆分或重新导出文件"),
    (r"^read the first (\d+) (\w+): the reader stopped without a result",
     "读取进程意外退出（内存不足？）：只读了前 \\1 \\2，其余未读：请拆分或重新导出文件"),
    (r"^read (\d+) of (\d+) pages: reading stopped after", "读取时间到了 read_seconds 的一部分：共 \\2 页，只读了前 \\1 页：请拆分 PDF，或调高 read_seconds"),
    (r"^read (\d+) of (\d+) pages without a text layer by OCR \(OCR_PAGES", "扫描页最多识别 \\1 页（OCR_PAGES），共 \\2 页：其余未读，请拆分 PDF"),
    (r"^read (\d+) of (\d+) pages without a text layer by OCR: reading stopped", "OCR 用完了 read_seconds 的份额：\\2 个扫描页只识别了 \\1 页：请拆分 PDF，或调高 read_seconds"),
    (r"past the first (\d+) with a value were not read \(SHEET_ROWS\)", "表格超过 \\1 行（SHEET_ROWS），其余行未读"),
    (r"(\d+) slides; only the first (\d+) were read \(SLIDES\)", "共 \\1 张幻灯片，只读了前 \\2 张（SLIDES）"),
    (r"(\d+) sheets; only the first (\d+) were read \(SHEETS\)", "共 \\1 个工作表，只读了前 \\2 个（SHEETS）"),
    (r"\(ROW_CELLS\)", "有的行单元格过多，超出部分未读（ROW_CELLS）"),
    (r"\(CELL_CHARS\)", "过长的单元格被截断（CELL_CHARS）"),
    (r"^line (\d+) skipped", "第 \\1 行无法读取，已跳过"),
    (r"^page (\d+): its forms were read up to pypdf's limit", "第 \\1 页的嵌套表单超过 pypdf 的读取上限，该页其余内容未读"),
    (r"^page (\d+): ", "第 \\1 页未能识别出文字"),
    (r"^document id .* refused", "有记录的文档 id 属于其他文件，该记录被拒绝：请给记录使用自己的 id"),
]
_CUTS = [(re.compile(p), zh) for p, zh in _CUTS_ZH]


def cut_in_chinese(warning: str) -> str:
    """The Chinese words for what a limit cut from an indexed file (a reader's warning, in English)."""
    for pattern, zh in _CUTS:
        if m := pattern.search(warning):
            text = m.expand(zh)
            return re.sub(r"\b(pages|slides|rows|paragraphs|lines)\b", lambda u: _UNITS[u[1]], text)
    return "文件有部分内容未读（原因见英文说明）"


def in_chinese(reason: str) -> str:
    """The Chinese words for an English reason; '' for none."""
    if not reason:
        return ""
    for pattern, zh in _PATTERNS:
        if m := pattern.search(reason):
            return m.expand(zh)
    return "未能完成（原因见英文说明）"
