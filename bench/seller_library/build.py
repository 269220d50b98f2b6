"""A seller's mixed-format library for measuring answers as a seller would: 8 files (Excel, Word,
PowerPoint, a scanned PDF, a screenshot, a saved page, Markdown, text) written for this project, with
questions.jsonl beside this file: 20 the library answers and 20 near-topic ones it does not, half in
English. The questions were written with the files, before the reader was trained.

    .venv/bin/python bench/seller_library/build.py OUT_FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"  # Debian's fonts-noto-cjk

FREIGHT_ROWS = [("目的地", "运输方式", "时效", "价格"),
                ("汉堡", "海运整柜40尺", "35天", "18000元/柜"),
                ("汉堡", "空运", "7天", "38元/公斤"),
                ("洛杉矶", "海运拼箱", "25天", "650元/立方米"),
                ("东京", "海运拼箱", "10天", "420元/立方米")]

RETURNS = [("美国站退货政策", "title"),
           ("美国站买家可以在收货后30天内申请退货。", ""),
           ("已拆封的电子产品退货时，卖家可以收取商品售价15%的重新上架费。", ""),
           ("因质量问题产生的退货，预付退货标签的费用由卖家承担。", ""),
           ("买家寄回的商品应在到仓后两个工作日内完成检查。", "")]

SLIDES = [("TikTok Shop入驻培训", "面向跨境卖家的入驻与运营要点"),
          ("入驻条件", "需要提供企业营业执照和法人身份证件。店铺保证金为500美元。"),
          ("佣金比例", "新店前90天的佣金比例为2%，之后按类目收取6%到8%。"),
          ("发货要求", "订单需要在3个工作日内发货，超时会影响店铺评分。")]

REPORT = ["US Market Report, Q3",
          "Gross merchandise value in the US market grew 12% in the third quarter.",
          "Home goods was the top category by sales, ahead of apparel and electronics.",
          "Customer acquisition cost rose 18% as advertising auctions became more competitive."]

ADS = ["广告投放复盘（9月）",
       "本月广告的ACOS目标为25%，实际为31%。",
       "核心关键词出价上调10%后，点击率提升了0.4个百分点。",
       "下月计划暂停转化率低于2%的广告组。"]

VAT_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>欧洲VAT合规要点 - 跨境知识库</title></head>
<body><nav><a href="/">首页</a> <a href="/vat">VAT专题</a></nav>
<article><h1>欧洲VAT合规要点</h1>
<p>德国的增值税标准税率为19%，食品和图书等商品适用7%的低税率。</p>
<p>自2021年7月起，欧盟远程销售的增值税门槛统一为每年1万欧元，超过门槛后需要在买家所在国缴纳增值税。</p>
<p>卖家可以通过一站式申报（OSS）在一个成员国集中申报各国的增值税。</p>
</article><footer>版权所有 跨境知识库</footer></body></html>
"""

BRAND = """---
title: 品牌出海经验分享
---

品牌出海的第一步是做好本地化，因为海外消费者对产品说明、售后和支付方式的习惯与国内不同。

独立站的流量主要来自社交媒体和搜索引擎，其中社交媒体上的短视频内容带来的新访客最多。

很多品牌先在平台上验证产品，再把复购的老客户引导到独立站。
"""

SUPPLIER = """Supplier notes: Shenzhen Hongda Electronics

The minimum order quantity is 500 units per colour.
Production lead time is 25 days after the deposit arrives.
The supplier asks for a 30% deposit when the order is placed.
Samples are sent by express within one week.
"""


def text_image(lines: list[str], width: int = 1400, size: int = 34):
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, size)
    image = Image.new("RGB", (width, 80 + len(lines) * (size + 28)), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((60, 40 + n * (size + 28)), line, fill="black", font=font)
    return image


def build(out: Path) -> None:
    import docx
    import openpyxl
    from pptx import Presentation

    out.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "物流报价"
    for row in FREIGHT_ROWS:
        sheet.append(row)
    book.properties.title = "仓储物流报价"
    book.save(out / "仓储物流报价.xlsx")

    document = docx.Document()
    for text, style in RETURNS:
        document.add_heading(text, 1) if style == "title" else document.add_paragraph(text)
    document.core_properties.title = "美国站退货政策"
    document.save(out / "退货政策.docx")

    deck = Presentation()
    for title, body in SLIDES:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(out / "TikTok Shop入驻培训.pptx")

    text_image(REPORT).save(out / "Q3 market report.pdf", "PDF", resolution=150)  # a scan: OCR reads it
    text_image(ADS).save(out / "广告投放复盘.png")
    (out / "欧洲VAT合规.html").write_text(VAT_PAGE, encoding="utf-8")
    (out / "品牌出海经验.md").write_text(BRAND, encoding="utf-8")
    (out / "supplier notes.txt").write_text(SUPPLIER, encoding="utf-8")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
