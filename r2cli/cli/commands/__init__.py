"""One module per command (or command group). Each exposes ``register(app)``.

Modules here import only typer, rich and the standard library at import time;
library modules are imported inside the command functions so `r2cli --help`
stays fast and never imports torch.
"""
