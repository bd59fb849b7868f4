"""Regenerate the small binary resources: the self-test sample image and the app icon.

The files are committed (resources/sample.png < 300 KB, icons a few KB each) so a build needs
no scikit-image; run this only to change them:  python packaging/make_resources.py

- resources/sample.png: scikit-image's "chelsea" photo (CC0, Stefan van der Walt), 448×296.
- resources/icon.png (256 px, Linux/Qt), icon.ico (Windows, 16–256 px), icon.icns (macOS):
  drawn here so there is no third-party artwork to license.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def make_sample(dest: Path) -> None:
    from skimage import data

    img = Image.fromarray(data.chelsea())  # 451×300 RGB
    img = img.resize((448, 296), Image.Resampling.LANCZOS)
    img.save(dest, "PNG", optimize=True)


def draw_icon(size: int = 1024) -> Image.Image:
    """A photo (sky, sun, hills) in a rounded tile with a red mask stroke and a brush tip."""
    s = size
    tile = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    # background tile: vertical gradient, rounded
    grad = Image.new("RGBA", (s, s))
    gd = ImageDraw.Draw(grad)
    for y in range(s):
        t = y / (s - 1)
        gd.line([(0, y), (s, y)], fill=(int(38 + 40 * t), int(52 + 10 * t), int(120 - 30 * t), 255))
    rmask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(rmask).rounded_rectangle([s * 0.04, s * 0.04, s * 0.96, s * 0.96], radius=s * 0.2, fill=255)
    tile.paste(grad, (0, 0), rmask)

    # the photo
    px0, py0, px1, py1 = s * 0.16, s * 0.2, s * 0.84, s * 0.74
    photo = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    pd = ImageDraw.Draw(photo)
    pd.rounded_rectangle([px0 - s * 0.02, py0 - s * 0.02, px1 + s * 0.02, py1 + s * 0.02], radius=s * 0.04, fill=(245, 245, 240, 255))
    pd.rectangle([px0, py0, px1, py1], fill=(120, 190, 235, 255))
    pd.ellipse([s * 0.6, s * 0.26, s * 0.74, s * 0.4], fill=(255, 214, 90, 255))
    pd.polygon([(px0, py1), (s * 0.36, s * 0.44), (s * 0.52, s * 0.62), (s * 0.62, s * 0.52), (px1, py1)], fill=(70, 150, 90, 255))
    pd.polygon([(px0, py1), (px0, s * 0.62), (s * 0.3, s * 0.56), (s * 0.5, py1)], fill=(45, 115, 70, 255))
    shadow = photo.split()[3].filter(ImageFilter.GaussianBlur(s * 0.015))
    tile.paste((0, 0, 0, 90), (int(s * 0.01), int(s * 0.02)), shadow)
    tile.alpha_composite(photo)

    # the mask stroke (translucent red, like the editor's mask overlay)
    stroke = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    sd = ImageDraw.Draw(stroke)
    pts = [(s * 0.3, s * 0.66), (s * 0.4, s * 0.55), (s * 0.5, s * 0.6), (s * 0.6, s * 0.48)]
    sd.line(pts, fill=(235, 45, 60, 170), width=int(s * 0.09), joint="curve")
    for x, y in (pts[0], pts[-1]):
        r = s * 0.045
        sd.ellipse([x - r, y - r, x + r, y + r], fill=(235, 45, 60, 170))
    tile.alpha_composite(stroke)

    # the brush: handle and ferrule pointing at the stroke's end
    brush = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    bd = ImageDraw.Draw(brush)
    bd.line([(s * 0.64, s * 0.44), (s * 0.86, s * 0.16)], fill=(250, 250, 250, 255), width=int(s * 0.05))
    bd.line([(s * 0.64, s * 0.44), (s * 0.69, s * 0.38)], fill=(190, 190, 200, 255), width=int(s * 0.06))
    bd.ellipse([s * 0.595, s * 0.425, s * 0.655, s * 0.485], fill=(235, 45, 60, 255))
    tile.alpha_composite(brush)
    return tile


def make_icons(folder: Path) -> None:
    big = draw_icon(1024)
    big.resize((256, 256), Image.Resampling.LANCZOS).save(folder / "icon.png", optimize=True)
    big.resize((256, 256), Image.Resampling.LANCZOS).save(
        folder / "icon.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
    )
    big.resize((512, 512), Image.Resampling.LANCZOS).save(folder / "icon.icns")


if __name__ == "__main__":
    RESOURCES.mkdir(exist_ok=True)
    make_sample(RESOURCES / "sample.png")
    make_icons(RESOURCES)
    for p in sorted(RESOURCES.glob("*")):
        print(f"{p.relative_to(RESOURCES.parent)}  {p.stat().st_size // 1024} KB")
