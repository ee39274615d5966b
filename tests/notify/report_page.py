"""Read the run report back: each section's tables and figures, as text."""

from __future__ import annotations

from html.parser import HTMLParser


class ReportPage(HTMLParser):
    """sections[id] = list of tables (rows of cell texts); figures = {dt: dd}; svgs[id] = count."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, list[list[list[str]]]] = {}
        self.svgs: dict[str, int] = {}
        self.figures: dict[str, str] = {}
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._svg_depth = 0
        self._dt: str | None = None
        self._text: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
            self.sections[self._section] = []
            self.svgs[self._section] = 0
        elif tag == "svg":
            self._svg_depth += 1
            if self._section is not None:
                self.svgs[self._section] += 1
        elif self._svg_depth:
            return
        elif tag == "table" and self._section is not None:
            self.sections[self._section].append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("dt", "dd"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg_depth -= 1
        elif self._svg_depth:
            return
        elif tag == "section":
            self._section = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._section is not None:
            self.sections[self._section][-1].append(self._row)
            self._row = None
        elif tag == "dt" and self._text is not None:
            self._dt = "".join(self._text).strip()
        elif tag == "dd" and self._text is not None and self._dt is not None:
            self.figures[self._dt] = "".join(self._text).strip()

    def handle_data(self, data: str) -> None:
        if self._svg_depth:
            return
        if self._cell is not None:
            self._cell.append(data)
        if self._text is not None:
            self._text.append(data)

    def counts(self, section: str, table: int = 0) -> dict[str, int]:
        """A two-column (name, count) table of a section as a dict, header row skipped."""
        rows = self.sections[section][table][1:]
        return {r[0]: int(r[1].replace(",", "")) for r in rows}
