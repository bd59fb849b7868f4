"""Pillow's way of writing our PNG text chunks: the reference the one PNG writer
(`app.core.imageio.encode_png`) is compared against, and a way to make PNGs as other tools do."""

from PIL import PngImagePlugin

from app.core import metadata


def pillow_pnginfo(params, width: int, height: int) -> PngImagePlugin.PngInfo | None:
    """tEXt when Latin-1, else UTF-8 iTXt (as A1111 writes)."""
    pairs = metadata.png_text_chunks(params, width, height)
    if not pairs:
        return None
    info = PngImagePlugin.PngInfo()
    for key, text in pairs:
        try:
            text.encode("latin-1")
            info.add_text(key, text)
        except UnicodeEncodeError:
            info.add_itxt(key, text)
    return info
