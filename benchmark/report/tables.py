"""The paper's tables rebuilt from the records, ours beside the paper's, with the agreement between them.

Collecting (records -> `Table`, plain data) is kept apart from rendering (`Table` -> Markdown, LaTeX, HTML,
CSV), as RobustBench does: the records stay plain JSON, every view of them is code.
"""
from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tabulate import DataRow, Line, TableFormat, tabulate

from attacks import ATTACKS
from attacks.external import is_external
from victims.atomic import write_text_atomic

from ..grids import GRIDS, Cell, grid_cells
from ..jobs.poison_store import made_as_now
from ..jobs.seeds import DEFAULT_SEED, Measurement, mean_text, measured, reseed
from ..records import read_record, read_records, record_path
from ..specs import CONTROL, VictimSpec
from .paper import paper_values

METRICS = ("probe_best", "probe_final", "knn")
FORMATS = ("md", "latex", "html", "csv")
PROTOCOL = {"probe_best": "linear probe, best test accuracy over the probe epochs (the paper's protocol)",
            "probe_final": "linear probe, test accuracy after the last probe epoch",
            "knn": "kNN classifier on the frozen features"}
SUPERVISED_NOTE = "supervised victims: their own classifier's test accuracy"
SUMMARY_COLUMNS = ["grid", "cells_measured", "kendall_tau", "mean_abs_diff", "scale"]
DASH = "-"


# ---------------------------------------------------------------------------------------------- collecting

def cell_metric(record: dict | None, probe: str, metric: str = "probe_best") -> float | None:
    """A record's number for a cell probed on `probe`: a supervised victim's classifier test accuracy
    (where recorded, whatever `metric`), else `metric`; None when the record lacks it."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    m = (record or {}).get("metrics", {}).get(probe)
    if not m:
        return None
    if (record or {}).get("victim", {}).get("algorithm") == "supervised" and "test_accuracy" in m:
        return float(m["test_accuracy"])
    return float(m[metric]) if m.get(metric) is not None else None


class RecordCache:
    """Reads each record once; `get` returns None for a missing or unreadable record, and for one made with
    other settings or data than the code's of now (an out-of-date record is not shown as a result)."""

    def __init__(self, results: Path, scale: str):
        self.results, self.scale, self._records = Path(results), scale, {}

    def get(self, key: str) -> dict | None:
        if key not in self._records:
            record = read_record(record_path(self.results, self.scale, key))
            self._records[key] = record if record is not None and is_current(record) else None
        return self._records[key]

    def seeds(self) -> list[int]:
        """The victim seeds of this scale's records (the grids' own seed first): the seeds a cell is looked up
        with."""
        if not hasattr(self, "_seeds"):
            found = {r.get("victim", {}).get("seed") for r in read_records(self.results, self.scale)}
            self._seeds = [DEFAULT_SEED] + sorted(s for s in found if isinstance(s, int) and s != DEFAULT_SEED)
        return self._seeds

    def measure(self, victim: VictimSpec, probe: str, metric: str = "probe_best") -> Measurement:
        """`victim`'s number on `probe` for every seed it was measured with (victim and poison reseeded)."""
        return measured({s: cell_metric(self.get(reseed(victim, s).key), probe, metric) for s in self.seeds()})

    def first_record(self, victim: VictimSpec, measurement: Measurement) -> dict | None:
        """The record of the first seed measured (where the data description is read)."""
        return self.get(reseed(victim, measurement.seeds[0]).key) if measurement.n else None

    def external_rows(self) -> list[str]:
        """The imported poisons (`ext:NAME`, sorted) that some victim of this scale was trained on."""
        if not hasattr(self, "_external"):
            self._external = sorted({attack for r in read_records(self.results, self.scale)
                                     if is_external(attack := ((r.get("victim") or {}).get("poison") or {})
                                                    .get("attack"))})
        return self._external


def is_current(record: dict) -> bool:
    """Whether a victim record was made with the settings and data its victim gets from the code of now."""
    from ..jobs.victim import same_settings, victim_settings
    from ..scales import get_scale

    try:
        spec = VictimSpec.from_dict(record["victim"])
        expected = victim_settings(spec)
        described = get_scale(spec.scale).describe_data(spec.dataset)
        # its poison made with another budget (or from another CP-C) is out of date too
        poison_now = spec.poison is None or spec.poison.is_clean or spec.poison.attack not in ATTACKS \
            or made_as_now(spec.poison, record.get("poison") or {})
    except (KeyError, TypeError, ValueError):  # e.g. an algorithm, data set or attack parameter no longer known
        return False
    return poison_now and same_settings(record.get("settings", {}), expected) and \
        record.get("data", {}).get("stands_for") == described



@dataclass(frozen=True)
class CellValue:
    """One table cell: its place, our number (None: not measured) and the paper's (None: none)."""

    grid: str
    row: str
    column: str
    ours: float | None
    paper: float | None
    data: tuple[str, ...] = ()  # what the record says it trained and probed on
    seeds: int = 1  # how many seeds `ours` is the mean of
    spread: float | None = None  # their sample standard deviation (None below two seeds)


@dataclass(frozen=True)
class Agreement:
    """Ours against the paper over the measured cells that have a paper value."""

    cells_measured: int
    kendall_tau: float | None
    mean_abs_diff: float | None


@dataclass
class Table:
    """One paper table: its rows and columns in the paper's order and every cell's values."""

    grid: str
    scale: str
    metric: str
    rows: list[str]
    columns: list[str]
    cells: list[CellValue] = field(default_factory=list)

    @property
    def data(self) -> list[str]:
        """The distinct data descriptions of the records used, in order of first use."""
        return list(dict.fromkeys(d for c in self.cells if c.ours is not None for d in c.data))

    @property
    def agreement(self) -> Agreement:
        return agreement(self.cells)


def table_cells(grid: str, scale: str, extra_rows: list[str] | tuple[str, ...] = ()) -> list[Cell]:
    """The grid's cells (with the imported poisons' rows `extra_rows`), with the `untrained` control row last
    (derived from the columns where the grid has none: same architecture, data set and probe, random weights)."""
    cells = grid_cells(grid, scale, extra_rows)
    if not any(c.row == CONTROL for c in cells):
        first: dict[str, Cell] = {}
        for c in cells:
            first.setdefault(c.column, c)
        cells += [replace(c, row=CONTROL, victim=c.victim.control()) for c in first.values()]
    return [c for c in cells if c.row != CONTROL] + [c for c in cells if c.row == CONTROL]


def data_description(record: dict, probe: str) -> tuple[str, ...]:
    """E.g. ('cifar10 -> CIFAR-10 (JPEG folder), train 10000 images, 32 px',) plus the probed set's
    test split where it is another data set."""
    data, dataset = record.get("data", {}), record.get("victim", {}).get("dataset", "?")
    out = [f"{dataset} -> {data.get('train', data.get('stands_for', '?'))}"]
    if probe != dataset:
        probed = data.get("probed", {}).get(probe, {})
        out.append(f"probed {probe} -> {probed.get('test', probed.get('stands_for', '?'))}")
    return tuple(out)


def build_table(grid: str, scale: str, results: Path, metric: str = "probe_best",
                cache: RecordCache | None = None) -> Table:
    """One paper table (not `all`: see `build_tables`) from the records under `results`, with a row for each
    imported poison (`ext:NAME`, no paper values) that has a measured cell in it."""
    if grid == "all":
        raise ValueError("`all` is several tables: use build_tables")
    cache = cache or RecordCache(results, scale)
    cells, paper = table_cells(grid, scale, cache.external_rows()), paper_values(grid)
    values = []
    for cell in cells:
        m = cache.measure(cell.victim, cell.probe, metric)
        record = cache.first_record(cell.victim, m)
        values.append(CellValue(grid, cell.row, cell.column, m.mean, paper.get((cell.row, cell.column)),
                                data_description(record, cell.probe) if m.n else (), max(m.n, 1), m.spread))
    shown = {v.row for v in values if not is_external(v.row) or v.ours is not None}
    cells, values = [c for c in cells if c.row in shown], [v for v in values if v.row in shown]
    return Table(grid, scale, metric, list(dict.fromkeys(c.row for c in cells)),
                 list(dict.fromkeys(c.column for c in cells)), values)


def build_tables(grid: str, scale: str, results: Path, metric: str = "probe_best") -> list[Table]:
    """`grid`'s table, or every table for `all`."""
    names = [n for n in GRIDS.names() if n != "all"] if grid == "all" else [grid]
    cache = RecordCache(results, scale)
    return [build_table(name, scale, results, metric, cache) for name in names]


# ---------------------------------------------------------------------------------------------- agreement

def kendall_tau(x: list[float], y: list[float]) -> float | None:
    """Kendall's tau-b (ties handled as scipy.stats.kendalltau does); None below 2 pairs or when either
    side is constant."""
    if len(x) != len(y):
        raise ValueError("kendall_tau needs two sequences of the same length")
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            ties_x += dx == 0
            ties_y += dy == 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return None if n < 2 or denominator == 0 else (concordant - discordant) / denominator


def agreement(cells: list[CellValue]) -> Agreement:
    both = [(c.ours, c.paper) for c in cells if c.ours is not None and c.paper is not None]
    ours, paper = [o for o, _ in both], [p for _, p in both]
    mad = sum(abs(o - p) for o, p in both) / len(both) if both else None
    return Agreement(len(both), kendall_tau(ours, paper), mad)


def agreement_text(a: Agreement, latex: bool = False) -> str:
    tau = "Kendall's $\\tau$" if latex else "Kendall's tau"
    if not a.cells_measured:
        return "Agreement with the paper: no measured cell has a paper value yet."
    diff = "mean absolute difference" if latex else "mean |ours - paper|"
    return (f"Agreement with the paper over {a.cells_measured} measured cell{'s' * (a.cells_measured != 1)}: "
            f"{tau} {'undefined' if a.kendall_tau is None else f'{a.kendall_tau:.2f}'}, "
            f"{diff} {a.mean_abs_diff:.1f} points.")


# ---------------------------------------------------------------------------------------------- rendering

def _diff(ours: float, paper: float) -> float:
    return round(round(ours, 1) - paper, 1) + 0.0  # + 0.0 turns -0.0 into 0.0


def ours_text(c: CellValue, pm: str = "±") -> str:
    """'44.9', or '44.9 ± 0.6 (3 seeds)' for the mean of several seeds."""
    return mean_text(c.ours, c.spread, c.seeds, pm)


def cell_text(c: CellValue) -> str:
    """'44.9 (paper 44.9, +0.0)'; '26.2' without a paper value; '- (paper 44.9)' when not measured; the mean of
    several seeds shows their spread: '44.9 ± 0.6 (3 seeds) (paper 44.9, +0.0)'."""
    if c.ours is None:
        return DASH if c.paper is None else f"{DASH} (paper {c.paper:.1f})"
    if c.paper is None:
        return ours_text(c)
    return f"{ours_text(c)} (paper {c.paper:.1f}, {_diff(c.ours, c.paper):+.1f})"


LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                 "<": r"\ensuremath{<}", ">": r"\ensuremath{>}", "|": r"\ensuremath{|}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters; '->' becomes an arrow."""
    return "$\\to$".join("".join(LATEX_ESCAPES.get(ch, ch) for ch in part) for part in text.split("->"))


def latex_cell(c: CellValue) -> str:
    if c.ours is None:
        return "--" if c.paper is None else f"-- {{\\scriptsize ({c.paper:.1f})}}"
    ours = ours_text(c, "$\\pm$")
    if c.paper is None:
        return ours
    diff = _diff(c.ours, c.paper)
    return f"{ours} {{\\scriptsize ({c.paper:.1f}, ${'-' if diff < 0 else '+'}${abs(diff):.1f})}}"


def frame(table: Table, text=cell_text) -> pd.DataFrame:
    """The table as a DataFrame of cell strings, rows and columns in the paper's order."""
    df = pd.DataFrame(DASH, index=pd.Index(table.rows, name="attack"), columns=table.columns, dtype=object)
    for c in table.cells:
        df.loc[c.row, c.column] = text(c)
    return df


def caption(table: Table, latex: bool = False) -> tuple[str, str, str]:
    """(title, data line, protocol line) of a table's caption."""
    title = f"Table {table.grid}, scale {table.scale}"
    data = "Data: " + ("; ".join(table.data) if table.data else "no records yet") + "."
    protocol = f"Probe: {PROTOCOL[table.metric]} [{table.metric}]; {SUPERVISED_NOTE}."
    if any(c.seeds > 1 for c in table.cells):
        protocol += (" A cell measured with several seeds shows their mean ± the sample standard deviation; "
                     "every other cell is one seed.")
    if latex:
        return latex_escape(title), latex_escape(data), latex_escape(protocol)
    return title, data, protocol


def _tabulate(df: pd.DataFrame, fmt: str | TableFormat) -> str:
    return tabulate(df, headers=[df.index.name, *df.columns], tablefmt=fmt, disable_numparse=True,
                    colalign=("left",) + ("right",) * len(df.columns))


def render_markdown(table: Table) -> str:
    title, data, protocol = caption(table)
    return (f"### {title}\n\n{data}\n{protocol}\nEach cell: ours (paper, ours - paper); {DASH} not measured yet.\n\n"
            f"{_tabulate(frame(table), 'pipe')}\n\n{agreement_text(table.agreement)}\n")


def _begin_tabular(colwidths: list[int], colaligns: list[str]) -> str:
    return "\\begin{tabular}{" + "".join("l" if a == "left" else "r" for a in colaligns) + "}\n\\toprule"


LATEX_BOOKTABS = TableFormat(lineabove=_begin_tabular, linebelowheader=Line("\\midrule", "", "", ""),
                             linebetweenrows=None, linebelow=Line("\\bottomrule\n\\end{tabular}", "", "", ""),
                             headerrow=DataRow("", "&", "\\\\"), datarow=DataRow("", "&", "\\\\"),
                             padding=1, with_header_hide=None)


def render_latex(table: Table) -> str:
    """A complete `table` environment (needs booktabs)."""
    df = frame(table, latex_cell)
    df.index = pd.Index([latex_escape(r) for r in df.index], name="attack")
    df.columns = [latex_escape(c) for c in df.columns]
    title, data, protocol = caption(table, latex=True)
    note = "Each cell: ours (paper, ours $-$ paper); -- not measured yet."
    return ("\\begin{table}[ht]\n\\centering\n\\small\n\\setlength{\\tabcolsep}{4pt}\n"
            f"\\caption{{{title}. {data} {protocol} {note}}}\n\\label{{tab:{table.grid}-{table.scale}}}\n"
            f"{_tabulate(df, LATEX_BOOKTABS)}\n\\par\\smallskip\n"
            f"{{\\footnotesize {agreement_text(table.agreement, latex=True)}}}\n\\end{{table}}\n")


def render_html(table: Table) -> str:
    title, data, protocol = caption(table)
    body = _tabulate(frame(table), "html").replace(
        "<table>", f"<table>\n<caption>{html.escape(title)}. {html.escape(data)} {html.escape(protocol)}</caption>", 1)
    return f"{body}\n<p>{html.escape(agreement_text(table.agreement))}</p>\n"


def render_csv(tables: list[Table], header: bool = True) -> str:
    """`grid,row,column,ours,paper,scale,seeds,spread`, one line per cell: ours is the mean over `seeds` seeds
    (empty, and seeds 0, where not measured), spread their sample standard deviation (empty below two)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["grid", "row", "column", "ours", "paper", "scale", "seeds", "spread"])
    for t in tables:
        for c in t.cells:
            writer.writerow([c.grid, c.row, c.column, "" if c.ours is None else f"{c.ours:.2f}",
                             "" if c.paper is None else f"{c.paper:.1f}", t.scale, 0 if c.ours is None else c.seeds,
                             "" if c.spread is None else f"{c.spread:.2f}"])
    return out.getvalue()


RENDERERS = {"md": render_markdown, "latex": render_latex, "html": render_html}
EXTENSIONS = {"md": "md", "latex": "tex", "html": "html", "csv": "csv"}


def render(tables: list[Table], fmt: str) -> str:
    """Every table in `fmt`, one after another (CSV: one header)."""
    if fmt == "csv":
        return render_csv(tables)
    return "\n".join(RENDERERS[fmt](t) for t in tables)


# ---------------------------------------------------------------------------------------------- writing

def summary_frame(tables: list[Table], previous: Path | None = None) -> pd.DataFrame:
    """The agreement of each table (rows of other grids kept from `previous`), in the grids' order."""
    rows = {}
    if previous is not None and previous.is_file():
        old = pd.read_csv(previous, dtype=str, keep_default_na=False)
        rows = {r["grid"]: dict(r) for _, r in old.iterrows()}
    for t in tables:
        a = t.agreement
        rows[t.grid] = {"grid": t.grid, "cells_measured": str(a.cells_measured),
                        "kendall_tau": "" if a.kendall_tau is None else f"{a.kendall_tau:.4f}",
                        "mean_abs_diff": "" if a.mean_abs_diff is None else f"{a.mean_abs_diff:.4f}",
                        "scale": t.scale}
    order = GRIDS.names()
    ordered = sorted(rows.values(), key=lambda r: order.index(r["grid"]) if r["grid"] in order else len(order))
    return pd.DataFrame(ordered, columns=SUMMARY_COLUMNS)


WRITTEN_FORMATS = ("md", "latex", "csv")  # written together, so that no file goes stale beside the others


def write_tables(tables: list[Table], folder: Path) -> list[Path]:
    """Write `<grid>.md`, `<grid>.tex` and `<grid>.csv` of each table and update `summary.csv` in `folder`,
    each file atomically; returns the paths written."""
    written = []
    for t in tables:
        for fmt in WRITTEN_FORMATS:
            path = folder / f"{t.grid}.{EXTENSIONS[fmt]}"
            write_text_atomic(path, render([t], fmt))
            written.append(path)
    summary = folder / "summary.csv"
    write_text_atomic(summary, summary_frame(tables, summary).to_csv(index=False, lineterminator="\n"))
    return written + [summary]


__all__ = ["METRICS", "FORMATS", "Agreement", "CellValue", "Table", "agreement", "build_table", "build_tables",
           "cell_metric", "kendall_tau", "latex_escape", "render", "render_csv", "render_html", "render_latex",
           "render_markdown", "summary_frame", "write_tables", "write_text_atomic"]
