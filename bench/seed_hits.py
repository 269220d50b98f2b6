"""Passage hit@5 of each search mode for English and Chinese questions on the bundled seed article.

    assistant index corpus && python bench/seed_hits.py [INDEX]
"""
import sys

from assistant import Assistant
bot = Assistant.open(sys.argv[1] if len(sys.argv) > 1 else "index")
cases = {
 "What did TikTok announce with Shopify?": "Shopify达成合作",
 "What are the risks of influencer marketing for brands?": "道德风险",
 "What share of marketers put more resources into influencer marketing?": "73%",
 "What are the three components of consumer trust in social commerce?": "三大组成部分",
 "Should a brand go all in on live-stream selling?": "all in",
 "What is user-generated content?": "UGC",
 "Why do top influencers refuse some brand deals?": "拒绝方式过于直接",
 "品牌应该all in直播带货吗？": "all in",
 "网红营销有哪些风险？": "道德风险",
 "社交电商的本质是什么？": "社交电商的本质",
 "消费者信任的三大组成部分是什么？": "三大组成部分",
 "为什么头部网红会拒绝一些营销合作？": "拒绝方式过于直接",
 "TikTok和哪个电商平台达成了合作？": "Shopify达成合作",
}
for mode in ("dense", "keyword", "hybrid"):
    en = [any(e in h.text for h in bot.search(q, k=5, mode=mode)) for q, e in cases.items() if q.isascii()]
    zh = [any(e in h.text for h in bot.search(q, k=5, mode=mode)) for q, e in cases.items() if not q.isascii()]
    print(f"{mode:8} passage hit@5: English questions {sum(en)}/{len(en)}, Chinese questions {sum(zh)}/{len(zh)}")
