"""r2cli output files: Parquet schemas (moments, saliency, summary), atomic writes, checked reads; run ids,
run folders and their ``run.json`` manifests (``runs``); folders published all-or-nothing (``publish``).

Every file carries ``r2cli.schema_version`` and ``r2cli.kind`` in its Parquet schema metadata
and uses plain Parquet types only, so pandas, DuckDB and Spark read it without r2cli.
This package root imports no heavy modules; pyarrow is imported when a file is written or read.
"""

from r2cli.outputs.io import Results, arrow_schema, check_schema, read_results, write_table
from r2cli.outputs.schemas import KINDS, SCHEMA_VERSION, Column, columns, markdown_table

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "Column",
    "Results",
    "arrow_schema",
    "check_schema",
    "columns",
    "markdown_table",
    "read_results",
    "write_table",
]
