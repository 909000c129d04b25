"""``python -m r2cli``: the same command as the ``r2cli`` script (useful from a source checkout)."""

from r2cli.cli.main import main

main()
