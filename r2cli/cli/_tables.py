"""Tables whose rows carry a name a user must act on (a file name, a path): never cut, never folded.

A rich table fits its columns to the terminal by folding or cutting cells, which breaks the names
a user copies into the next command (``red_then_blue_cut.m…``, ``job-sampl│e/search``). ``NamedRows``
keeps the bordered table where every name fits whole in its column; on a narrower terminal it
prints the short cells as aligned columns and each row's name on its own line below them, whole
(a name longer than the terminal is one line that the terminal wraps, so it still copies whole).
Rows may be grouped (a search's query): in the narrow layout the group is a heading line.

All cells are plain text (no rich markup); pass them through ``r2cli.safe_text.one_line`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

NAME_INDENT = 4  # spaces before a name on its own line


@dataclass
class _Row:
    cells: list[str]
    name: str
    group: str | None = None
    note: str | None = None  # a second line under the name (an error), in the note style


@dataclass
class NamedRows:
    """Rows of short cells, each with a name; ``print_named_rows`` picks the layout for the width."""

    columns: list[tuple[str, str]]  # (header, justify: "left" | "right") of the short cells
    name_header: str  # the header of the names
    title: str | None = None
    group_header: str | None = None  # a first column naming each row's group, shown on the group's first row
    note_style: str = "red"
    name_first: bool = False  # in the bordered table, the names' column first (after the group) instead of last
    rows: list[_Row] = field(default_factory=list)

    def add_row(self, *cells: str, name: str, group: str | None = None, note: str | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(_Row(list(cells), name, group, note))

    @property
    def _grouped(self) -> bool:
        return self.group_header is not None and any(r.group for r in self.rows)

    def table(self) -> Table:
        """The bordered table: names whole in the last column (it never wraps)."""
        table = Table(title=Text(self.title) if self.title else None, show_header=True, header_style="bold")
        if self._grouped:
            table.add_column(self.group_header, justify="left", overflow="fold", min_width=8)
        longest = max((cell_len(r.name) for r in self.rows), default=0)
        if self.name_first:
            table.add_column(self.name_header, justify="left", no_wrap=True, min_width=max(longest, cell_len(self.name_header)))
        for header, justify in self.columns:
            table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        if not self.name_first:
            table.add_column(self.name_header, justify="left", no_wrap=True, min_width=max(longest, cell_len(self.name_header)))
        last = object()
        for row in self.rows:
            cells: list[Text] = []
            if self._grouped:
                cells.append(Text(row.group or "") if row.group != last else Text(""))
                last = row.group
            name = Text(row.name)
            if row.note:
                name.append("\n").append(row.note, style=self.note_style)
            cells += [name] if self.name_first else []
            cells += [Text(c) for c in row.cells]
            cells += [] if self.name_first else [name]
            table.add_row(*cells)
        return table

    def fits(self, width: int) -> bool:
        """Whether the bordered table shows every name whole (on one line of it) at ``width`` columns."""
        from rich.measure import Measurement

        console = Console(width=width, file=_Null(), color_system=None, legacy_windows=False)
        table = self.table()
        if Measurement.get(console, console.options, table).minimum > width:
            return False  # rich would crop the table's right side
        lines = ["".join(s.text for s in line) for line in console.render_lines(table, pad=False)]
        if any(cell_len(line) > width for line in lines) or not lines or not lines[-1].rstrip().endswith("┘"):
            return False  # wider than the terminal, or cropped on the right
        return all(any(row.name in line for line in lines) for row in self.rows)

    def narrow_lines(self) -> list[Text]:
        """The short cells as aligned columns, each row's name (and note) on its own line below it."""
        widths = [max([cell_len(h)] + [cell_len(r.cells[i]) for r in self.rows]) for i, (h, _) in enumerate(self.columns)]

        def line(cells: list[str]) -> str:
            parts = [c.rjust(w) if j == "right" else c.ljust(w) for c, w, (_, j) in zip(cells, widths, self.columns)]
            return "  ".join(parts).rstrip()

        indent = " " * NAME_INDENT
        out = [Text(self.title, style="bold")] if self.title else []
        header = Text(line([h for h, _ in self.columns]), style="bold")
        last = object()
        if not self._grouped:
            out += [header, Text(indent + self.name_header, style="bold")]
        for row in self.rows:
            if self._grouped and row.group != last:
                out += [Text(row.group or "", style="bold"), header]
                last = row.group
            out.append(Text(line(row.cells)))
            out.append(Text(indent + row.name))
            if row.note:
                out.append(Text(indent + row.note, style=self.note_style))
        return out


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def print_named_rows(console: Console, rows: NamedRows) -> None:
    """Print ``rows`` on ``console``: the bordered table when every name fits whole, else the narrow layout."""
    if rows.fits(console.width):
        console.print(rows.table())
        return
    for line in rows.narrow_lines():
        console.print(line, soft_wrap=True, highlight=False)
