"""Photo restoration models loaded with spandrel: LaMa inpainting, upscalers, denoisers, face
restorers. Discovery (`files`) reads no weights and imports no torch; `loader` reads a file
(`.safetensors`, or `.pth`/`.pt` through torch's weights-only unpickler) and lets spandrel
detect the architecture; `tiling` runs an image model tile by tile within a memory budget;
`process` keeps alpha and 16-bit data around the model's 8-bit/float work; `lama` is the
inpainting backend the engine drives like any other."""
