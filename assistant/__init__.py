"""Seller Assistant: answers sellers' questions from their article library, citing the exact source text.

    from assistant import Assistant
    bot = Assistant.build("corpus", "index")   # or Assistant.open("index")
    answer = bot.ask("Should a brand go all in on live-stream selling?")
    print(answer.text, answer.citations)
"""

from .answer import Answer, Citation
from .config import Config, load_config
from .core import Assistant, Refused, index_library
from .index import IndexReport
from .load import Document, LoadError
from .retrieve import Hit

__all__ = [
    "Answer", "Assistant", "Citation", "Config", "Document", "Hit", "IndexReport", "LoadError", "Refused",
    "index_library", "load_config",
]
