"""LaMa's full-resolution layers run in horizontal strips, so its memory follows the bottleneck.

big-lama works at full resolution only in its first and last layers (a 7×7 convolution to 64
channels and a stride-2 convolution down; two stride-2 transposed convolutions up and a 7×7
convolution back to RGB); its 18 Fourier blocks, which see the whole image, work at 1/8 of it.
Run whole, those outer layers hold several 64-channel full-size tensors and the CPU transposed
convolution a column buffer 9× its input: ≈1 GB above the weights for a 1 MP crop, most of the
run's peak. Every one of them is local (a receptive field of a few rows), so each is run here on
strips of rows with a halo that covers that field, keeping only the rows the halo made exact:
the result equals the whole-image forward (to float rounding: the same sums per pixel), and only
the 1/4-size tensors between head and tail are ever whole.
"""

from __future__ import annotations

#: The strip's height in full-resolution rows (a multiple of 8: the tail's 1/4-size input).
STRIP_ROWS = 256
#: Layers of spandrel's FFCResNetGenerator ``model`` Sequential: 0-3 = reflection pad, 7×7 conv,
#: two stride-2 convs (full → 1/4 size); 27-35 = the last two transposed convs, reflection pad,
#: 7×7 conv, sigmoid (1/4 → full size). The layers between see 1/4 size or less.
HEAD_END, TAIL_START = 4, 27
#: Rows of halo, in each part's input rows: the head's receptive field is 3 (7×7) + 2·1 (3×3 at
#: 1/2) + 4·1 (3×3 at 1/4) rows ≤ 16; the tail's, in its 1/4-size input, is ≤ 1 + 1 + 3/4 → 4.
HEAD_HALO, TAIL_HALO = 16, 4
#: The layer types that sequence is made of, as spandrel 0.4 builds it (checked before use).
_EXPECTED = {0: "ReflectionPad2d", 1: "FFC_BN_ACT", 2: "FFC_BN_ACT", 3: "FFC_BN_ACT", 23: "ConcatTupleLayer",
             27: "ConvTranspose2d", 30: "ConvTranspose2d", 33: "ReflectionPad2d", 34: "Conv2d", 35: "Sigmoid"}


def supported(generator) -> bool:
    """Whether ``generator`` (spandrel's LaMa ``model``) has the layer sequence this module knows."""
    layers = getattr(generator, "model", None)
    try:
        return len(layers) == 36 and all(type(layers[i]).__name__ == name for i, name in _EXPECTED.items())
    except TypeError:
        return False


def forward(generator, x, rows: int = STRIP_ROWS):
    """``generator.model(x)`` (x: N×4×H×W, H and W multiples of 8) with the full-resolution
    layers run ``rows`` output rows at a time."""
    import torch

    layers = list(generator.model)
    head = torch.nn.Sequential(*layers[:HEAD_END])
    tail = torch.nn.Sequential(*layers[TAIL_START:])
    y = _in_strips(head, x, up=1, down=4, halo=HEAD_HALO, rows=rows)
    for layer in layers[HEAD_END:TAIL_START]:
        y = layer(y)
    return _in_strips(tail, y, up=4, down=1, halo=TAIL_HALO, rows=max(1, rows // 4))


def _in_strips(part, x, *, up: int, down: int, halo: int, rows: int):
    """``part(x)`` computed over strips of ``rows`` input rows (a multiple of ``down``) with
    ``halo`` rows of real context each side; ``part`` maps ``r`` input rows to ``r·up/down``.
    Its output may be a tensor or a tuple of tensors and non-tensors (FFC's (local, global))."""
    height = x.shape[2]
    rows -= rows % down
    if rows <= 0 or height <= rows:
        return part(x)
    out = None
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        a, b = max(0, r0 - halo), min(height, r1 + halo)  # halo is a multiple of ``down``
        piece = part(x[:, :, a:b])
        keep = slice((r0 - a) * up // down, (r1 - a) * up // down)
        dest = slice(r0 * up // down, r1 * up // down)
        parts = piece if isinstance(piece, tuple) else (piece,)
        if out is None:
            out = [_empty_like(p, height * up // down) for p in parts]
        for target, p in zip(out, parts):
            if target is not None:
                target[:, :, dest] = p[:, :, keep]
    assert out is not None
    done = tuple(t if t is not None else p for t, p in zip(out, parts))  # non-tensors (0) as they came
    return done if isinstance(piece, tuple) else done[0]


def _empty_like(part, height: int):
    import torch

    if not isinstance(part, torch.Tensor):
        return None
    return part.new_empty((part.shape[0], part.shape[1], height, part.shape[3]))
