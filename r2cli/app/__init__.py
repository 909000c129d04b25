"""The application layer: one module per use case (index, search, summarize, cut, report,
finetune, evaluate), each with an options dataclass that owns its defaults and rules.

The CLI builds the options from its flags and the job runner from a TOML table
(``r2cli.app.options``); both call the same use-case function, so a job step and the equivalent
command line give the same outputs. Modules here orchestrate; the work itself is done by the
pipeline stages in ``r2cli.features``, ``r2cli.inference``, ``r2cli.media`` and ``r2cli.catalog``.
"""
