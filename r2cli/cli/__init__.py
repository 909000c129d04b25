"""The command-line layer: the only part of r2cli that imports typer or prints."""
