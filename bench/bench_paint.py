"""Per-point stroke latency on a 24 MP image: our dirty-rect canvas against a naive full-image update.

One "point" is what a mouse move costs end to end: the real ``QMouseEvent`` goes through
``CanvasView.mouseMoveEvent`` (mask update on the segment's bounding box), then the event loop
delivers the repaint (only the dirty rectangle). The naive baseline, in the same run, paints the
same segment into the mask, rebuilds the whole RGBA overlay and repaints the whole widget, which
is what a straightforward QImage-per-frame canvas does. Target: < 8 ms per point (120 Hz).

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_paint.py [--points 200] [--width 6000 --height 4000]``
Prints figures; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QMouseEvent, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from app.editor.document import Document  # noqa: E402
from app.widgets.canvas import CanvasView  # noqa: E402


def make_photo(width: int, height: int) -> np.ndarray:
    """A smooth gradient with texture, like a photo (random noise would be unrealistically hard)."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
    img[..., 2] = ((x // 37 + y // 23) % 2 * 60 + 80).astype(np.uint8)
    return img


def stroke_path(canvas: QWidget, n: int, spacing: float = 4.0) -> list[QPointF]:
    """A wavy path across the widget with ``spacing`` widget px between events (a brisk mouse)."""
    w, h = canvas.width(), canvas.height()
    pts, x = [], 0.1 * w
    for i in range(n):
        x = 0.1 * w + (i * spacing) % (0.8 * w)
        y = h / 2 + 0.3 * h * math.sin(i / 25.0)
        pts.append(QPointF(x, y))
    return pts


def send(widget: QWidget, kind: QEvent.Type, pos: QPointF, buttons) -> None:
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


class PaintCounter(QObject):
    """Counts paint events and the widget area they cover: proof that the repaint really ran."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.area = 0

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Type.Paint:
            self.count += 1
            self.area += event.rect().width() * event.rect().height()
        return False


def time_points(app: QApplication, widget: QWidget, points: list[QPointF]) -> tuple[list[float], float, str]:
    """ms per mouse move including the repaint it causes; ms for the release (undo commit)."""
    held = Qt.MouseButton.LeftButton
    counter = PaintCounter()
    widget.installEventFilter(counter)
    send(widget, QEvent.Type.MouseButtonPress, points[0], held)
    app.processEvents()
    times = []
    for p in points[1:]:
        t0 = time.perf_counter()
        send(widget, QEvent.Type.MouseMove, p, held)
        app.processEvents()  # delivers the UpdateRequest: paintEvent + backing-store flush
        times.append((time.perf_counter() - t0) * 1000.0)
    t0 = time.perf_counter()
    send(widget, QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
    app.processEvents()
    release = (time.perf_counter() - t0) * 1000.0
    widget.removeEventFilter(counter)
    share = counter.area / max(1, counter.count) / (widget.width() * widget.height())
    return times, release, f"{counter.count} paints, {100 * share:.1f}% of widget each"


class NaiveCanvas(QWidget):
    """Baseline: full-mask overlay rebuilt and the whole widget repainted on every point."""

    def __init__(self, pixels: np.ndarray, radius: float) -> None:
        super().__init__()
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.pixels = pixels
        self.mask = np.zeros(pixels.shape[:2], np.uint8)
        self.radius = radius
        h, w = self.mask.shape
        self.image = QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_RGB888)
        self.overlay = QImage()
        self.zoom = 1.0
        self.last: QPointF | None = None

    def fit(self) -> None:
        h, w = self.mask.shape
        self.zoom = min(self.width() / w, self.height() / h)

    def to_image(self, p: QPointF) -> tuple[int, int]:
        return int(p.x() / self.zoom), int(p.y() / self.zoom)

    def mousePressEvent(self, e):  # noqa: N802
        self.last = e.position()
        self._paint(e.position())

    def mouseMoveEvent(self, e):  # noqa: N802
        if self.last is not None:
            self._paint(e.position())

    def mouseReleaseEvent(self, e):  # noqa: N802
        self.last = None

    def _paint(self, p: QPointF) -> None:
        cv2.line(self.mask, self.to_image(self.last), self.to_image(p), 255, int(2 * self.radius), cv2.LINE_AA)
        self.last = p
        rgba = np.zeros(self.mask.shape + (4,), np.uint8)  # the overlay, rebuilt in full
        rgba[..., 0] = 255
        rgba[..., 3] = self.mask // 2
        h, w = self.mask.shape
        self._rgba = rgba
        self.overlay = QImage(rgba.data, w, h, w * 4, QImage.Format.Format_RGBA8888)
        self.update()

    def paintEvent(self, e):  # noqa: N802
        p = QPainter(self)
        h, w = self.mask.shape
        target = QRectF(0, 0, w * self.zoom, h * self.zoom)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 1)
        p.drawImage(target, self.image)
        if not self.overlay.isNull():
            p.drawImage(target, self.overlay)
        p.end()


def summary(times: list[float]) -> str:
    s = sorted(times)
    p95 = s[int(0.95 * (len(s) - 1))]
    return f"mean {statistics.fmean(s):6.2f}  median {statistics.median(s):6.2f}  p95 {p95:6.2f}  max {s[-1]:6.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--view", default="1600x1000", help="widget size WxH")
    args = ap.parse_args()
    vw, vh = (int(v) for v in args.view.split("x"))
    app = QApplication.instance() or QApplication([])
    print(f"# bench_paint: {args.width}x{args.height} image ({args.width * args.height / 1e6:.0f} MP), widget {vw}x{vh}")
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    photo = make_photo(args.width, args.height)
    doc = Document()
    doc.set_image(photo)
    print(f"open: {1000 * (time.perf_counter() - t0):.0f} ms (incl. synthesising the photo)")
    canvas = CanvasView(doc)
    canvas.resize(vw, vh)
    canvas.show()
    app.processEvents()

    rows, notes = [], []
    for label, zoom, brush in [("fit", None, 60), ("fit", None, 400), ("100%", 1.0, 60), ("100%", 1.0, 200), ("400%", 4.0, 30)]:
        if zoom is None:
            canvas.zoom_fit()
        else:
            canvas.set_zoom(zoom)
        canvas.set_brush_size(brush)
        canvas.set_hardness(0.7)
        app.processEvents()
        pts = stroke_path(canvas, args.points + 1)
        times, release, paints = time_points(app, canvas, pts)
        rows.append((f"ours  zoom {label:4} (x{canvas.zoom:.3f}) brush {brush:3}px", times))
        notes.append(f"ours  zoom {label:4} brush {brush:3}px: {paints}; stroke commit (undo tiles) {release:.1f} ms")
        t0 = time.perf_counter()
        canvas.update()
        app.processEvents()
        rows.append((f"ours  full repaint (pan/zoom frame) at {label}", [(time.perf_counter() - t0) * 1000.0]))

    naive = NaiveCanvas(photo, radius=30)
    naive.resize(vw, vh)
    naive.show()
    naive.fit()
    app.processEvents()
    naive_points = max(20, args.points // 5)  # it is slow: fewer points for the same statistics
    times_naive, _, paints = time_points(app, naive, stroke_path(naive, naive_points + 1))
    notes.append(f"naive: {paints}")
    rows.append((f"naive zoom fit brush  60px (full overlay + full repaint), {naive_points} pts", times_naive))

    for label, times in rows:
        print(f"{label:64} {summary(times)}")
    for note in notes:
        print(note)
    ours_fit = statistics.median(rows[0][1])
    print(f"speed-up at fit, brush 60 px (median): {statistics.median(times_naive) / ours_fit:.0f}x; "
          f"120 Hz budget 8.3 ms: {'met' if ours_fit < 8.3 else 'NOT met'} ({ours_fit:.2f} ms)")
    print(f"undo history after {len(rows) // 2} strokes: {doc.history.nbytes() / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
