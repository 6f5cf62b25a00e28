"""Text on pictures with PIL alone (``ImageDraw`` and PIL's default font): labels, titles,
values, for the heatmap and the sweep sheet."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 12
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
PAD = 6
"""Space between a picture's parts, in pixels."""


@lru_cache(maxsize=4)
def font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's default font at ``size`` px (its bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def text_width(text: str, size: int = FONT_SIZE) -> int:
    return round(font(size).getlength(text))


def line_height(size: int = FONT_SIZE) -> int:
    """Height of a line of text, ascent to descent, plus a little air."""
    _, top, _, bottom = font(size).getbbox("Hgjy|")
    return bottom - min(top, 0) + 2


def shorten(text: str, width: int, size: int = FONT_SIZE) -> str:
    """``text`` cut from the front to ``width`` pixels, with "…" where it was cut (the end of
    a path, its file name, is what tells images apart)."""
    if text_width(text, size) <= width:
        return text
    for start in range(1, len(text)):
        cut = "…" + text[start:]
        if text_width(cut, size) <= width:
            return cut
    return ""


def draw_text(
    canvas: Image.Image,
    xy: tuple[int, int],
    text: str,
    fill: tuple[int, int, int] = INK,
    size: int = FONT_SIZE,
    anchor: str = "la",
) -> None:
    """``text`` at ``xy`` (``anchor`` as PIL's: ``la`` left-top, ``ra`` right-top,
    ``mm`` centred, ...)."""
    ImageDraw.Draw(canvas).text(xy, text, fill=fill, font=font(size), anchor=anchor)


def draw_vertical_text(
    canvas: Image.Image, bottom_left: tuple[int, int], text: str, fill=INK, size=FONT_SIZE
) -> None:
    """``text`` written upwards (rotated a quarter turn), its baseline's start at
    ``bottom_left``: column labels."""
    width, height = max(1, text_width(text, size)), line_height(size)
    strip = Image.new("RGB", (width, height), BACKGROUND)
    draw_text(strip, (0, 0), text, fill, size)
    turned = strip.rotate(90, expand=True)
    left, bottom = bottom_left
    mask = Image.eval(turned.convert("L"), lambda value: 255 - value)
    canvas.paste(turned, (left, bottom - turned.height), mask)


def ink_on(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Dark text on a light colour, white text on a dark one."""
    red, green, blue = rgb
    return INK if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)


def wrap(text: str, width: int, size: int = FONT_SIZE) -> list[str]:
    """``text`` in lines of at most ``width`` pixels, broken between words (a word longer
    than a line is shortened)."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and text_width(joined, size) <= width:
            lines[-1] = joined
        else:
            lines.append(shorten(word, width, size))
    return lines
