"""Seller Assistant: answers sellers' questions from their article library, citing the exact source text.

    from assistant import Assistant
    bot = Assistant.build("corpus", "index")   # or Assistant.open("index")
    answer = bot.ask("Should a brand go all in on live-stream selling?")
    print(answer.text, answer.citations)
"""

from .answer.compose import Answer, Citation
from .answer.retrieve import Hit
from .config import Config, load_config
from .core import Assistant, Refused, index_library
from .document import Document
from .ingest.indexing import IndexReport
from .ingest.load import LoadError

__all__ = [
    "Answer", "Assistant", "Citation", "Config", "Document", "Hit", "IndexReport", "LoadError", "Refused",
    "index_library", "load_config",
]
