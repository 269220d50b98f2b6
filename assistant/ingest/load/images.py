"""Screenshots and photos of text (.png, .jpg, .jpeg, .webp), and scanned pages, read by OCR.

OCR is rapidocr: PP-OCR's Chinese + English detection and recognition models (ONNX) ship inside its
wheel and run on onnxruntime on the CPU, so nothing is downloaded, ever. Each recognised line keeps
its box (see `Document`), for a page that shows the page image with the quoted lines on it.
"""

from __future__ import annotations

import functools
import io
import warnings as python_warnings
from pathlib import Path

from ...document import LAYOUT, Document
from .base import LoadError, new_document
from .lines import full_width, wraps

# Pixels of an image, read from its header before a pixel is decoded: a few kilobytes of PNG can
# declare gigapixels (a decompression bomb). 40 MP holds a 300 dpi A3 scan and a long phone screenshot.
MAX_PIXELS = 40_000_000
# The side the text detector sees at most (larger pages are scaled down for it; the recogniser reads
# each line at the page's own resolution, up to OCR_MAX_SIDE). rapidocr's default scales every image
# *up* to 736 px on its short side: 9 s instead of 0.3 s for a 720 × 120 screenshot on 2 cores. On a
# dense A4 page at 150 dpi, 960 and 1280 read every character, and 1536 took 40 % longer.
DETECT_SIDE = 1280
OCR_MAX_SIDE = 4000
# Lines on one visual row (cells of a table, label and value) are joined by a space: they overlap by
# this much of the lower one's height.
_SAME_ROW = 0.5


def ocr_enabled(ocr: bool, path: Path) -> None:
    if not ocr:
        raise LoadError(path, "an image is read by OCR, which is switched off (ocr = false); switch it on "
                              "to index screenshots and scans")


def open_image(path: Path, data: bytes):
    """(image, date): the image in `data` as RGB(A), refused before it is decoded when it has more than
    MAX_PIXELS, and the day it was taken or made as YYYY-MM-DD (EXIF), or ""."""
    from PIL import Image, ImageOps

    def too_large(pixels: float) -> LoadError:
        return LoadError(path, f"an image of {pixels / 1e6:.0f} megapixels, more than the {MAX_PIXELS / 1e6:.0f} "
                               "that are read (a decompression bomb?); scale it down or crop it")
    try:
        with python_warnings.catch_warnings():
            python_warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"])
            if image.width * image.height > MAX_PIXELS:
                raise too_large(image.width * image.height)
            taken = str(image.getexif().get(0x0132) or "")  # DateTime: "2024:03:02 10:15:00"
            image = ImageOps.exif_transpose(image)  # a phone photo is stored on its side
            alpha = "A" in image.getbands() or "transparency" in image.info
            return image.convert("RGBA" if alpha else "RGB"), _exif_day(taken)
    except LoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LoadError(path, f"a decompression bomb ({exc}); the image is not read") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for what it cannot decode
        raise LoadError(path, f"not a readable PNG, JPEG or WebP image ({type(exc).__name__}: {str(exc)[:200]}); "
                              "re-save or re-export it") from exc


def _exif_day(value: str) -> str:
    day = value[:10].replace(":", "-")
    return day if len(day) == 10 and day[:4].isdigit() else ""


@functools.cache
def _engine():
    from rapidocr import RapidOCR

    # The line-direction classifier is off: on a plain A4 page it turned 2 of 12 upright English lines
    # upside down (94 % of English characters read instead of 100 %).
    # Photos stand upright by their EXIF orientation; a page scanned upside down is not read.
    return RapidOCR(params={"Global.log_level": "error", "Global.use_cls": False,
                            "Global.max_side_len": OCR_MAX_SIDE, "Det.limit_type": "max",
                            "Det.limit_side_len": DETECT_SIDE})


def ocr_page(image) -> tuple[str, list]:
    """(text, lines) of a page image: its recognised lines in reading order, and for each [start, end,
    box] with text[start:end] the line and box its corners as fractions of the image (see `Document`)."""
    result = _engine()(image)
    if not result.txts:
        return "", []
    width, height = image.size
    boxes = [[(float(x), float(y)) for x, y in box] for box in result.boxes]
    # As in a PDF's text (`join_wrapped_lines`), a page of one or two lines has no usual width to fill.
    full = full_width([_width(b) for b in boxes]) if len(boxes) >= 3 else float("inf")
    parts, lines, pos = [], [], 0
    previous: tuple[str, list] | None = None
    for text, box in zip(result.txts, boxes):
        text = text.strip()
        if not text:
            continue
        if previous is not None:
            separator = _separator(previous, (text, box), full)
            parts.append(separator)
            pos += len(separator)
        parts.append(text)
        corners = [round(v, 4) for x, y in box for v in (x / width, y / height)]
        lines.append([pos, pos + len(text), corners])
        pos += len(text)
        previous = (text, box)
    return "".join(parts), lines


def _width(box: list) -> float:
    return max(x for x, _ in box) - min(x for x, _ in box)


def _separator(previous: tuple[str, list], line: tuple[str, list], full: float) -> str:
    """What goes between two recognised lines: a space on one row, nothing inside a wrapped Chinese
    sentence, else a line break."""
    (before, a), (after, b) = previous, line
    a_top, a_bottom = min(y for _, y in a), max(y for _, y in a)
    b_top, b_bottom = min(y for _, y in b), max(y for _, y in b)
    overlap = min(a_bottom, b_bottom) - max(a_top, b_top)
    if overlap > _SAME_ROW * min(a_bottom - a_top, b_bottom - b_top) and min(x for x, _ in b) >= max(x for x, _ in a) - 2:
        return " "
    return "" if wraps(before, _width(a), full, after) else "\n"


def load_image(path: Path, data: bytes, ocr: bool) -> Document:
    ocr_enabled(ocr, path)
    image, date = open_image(path, data)
    try:
        text, lines = ocr_page(image)
    except Exception as exc:  # onnxruntime's and OpenCV's errors on an image they cannot take
        raise LoadError(path, f"OCR could not read the image ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not text:
        raise LoadError(path, "OCR found no text in the image")
    layout = {"ocr": [{"page": 1, "width": image.width, "height": image.height, "lines": lines}]}
    return new_document(path, text, title=path.stem, date=date, pages=[0], meta={LAYOUT: layout})
