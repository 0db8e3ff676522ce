"""Tables that stay readable at 80 columns: headers never shrink, cells wrap, nothing is cut.

rich shrinks a wide table's columns down to ``p…`` and cuts long names with an ellipsis; an
installer on a Pi's console then cannot read a header or copy a quantity name. Here every
column is at least as wide as its header and long cells fold onto the next line instead.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["fitting_table"]


def fitting_table(*headers: str, whole: tuple[str, ...] = (), **options: Any) -> Table:
    """A rich Table whose columns keep their header's width and fold long cells.

    The columns named in ``whole`` never fold: names someone copies into a file (a
    quantity, a profile id) stay on one line, and the other columns give way.
    """
    table = Table(**options)
    for header in headers:
        table.add_column(header, min_width=len(header), overflow="fold",
                         no_wrap=header in whole)
    return table
