"""`inpaint-studio serve`: the hosted inpainting APIs (OpenAI images, Segmind, Replicate-style
predictions, Appypie/Pixazo, AUTOMATIC1111) on a local FastAPI app. Every route parses its own
request shape into a `GenerationRequest` and hands it to the one job queue, which calls the
generation service; no route checks parameters or builds records itself."""
