"""The imaging core: parameters, geometry, image I/O, metadata, masks, regions, compositing and
seams. numpy, Pillow and OpenCV only: no Qt, no torch (import-linter checks it)."""
