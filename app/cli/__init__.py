"""The headless command line front end (`inpaint-studio inpaint|img2img|models …`)."""
