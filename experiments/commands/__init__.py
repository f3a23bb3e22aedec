"""The ``vdg`` sub-commands, one module per command family."""
