"""Training and sampling, independent of any UI: the loop with callbacks (``trainer``), generation (``sample``),
devices and precision (``devices``), and torchrun plumbing (``distributed``). Never imports the store, the server
or the lessons: the CLI, the app's workers, the race and a notebook all drive the same loop."""
