"""The layout of a faceted figure: margins measured once, so that saving draws it once.

A layout engine (constrained layout) measures every decoration at every draw,
and ``savefig`` draws a figure with one twice; on log axes each measure also
builds and sizes every minor tick.  The figures of :mod:`sim.figures` have a
known shape (a grid of equal panels, a suptitle above and one legend below),
so their margins are measured here once, from the same Agg renderer (at
:data:`~sim.figures.style.DPI`) that later draws the PNG, and fixed with
``Figure.subplots_adjust``: the figure is then drawn exactly once, by
``print_png``.

Before measuring, :func:`finish` makes log axes cheaper without changing
what they show: decade labels are plain Unicode text (``10⁻⁶``, as the
default formatter shows it in mathtext, which costs a parse per label and
renderer), and minor ticks that draw nothing (no mark, no grid line, no
label, as in seaborn's whitegrid style on an axis spanning several decades)
are not built at all.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.ticker import LogFormatterSciNotation, NullLocator
from matplotlib.transforms import Bbox

#: Space between a panel's decorations and its neighbours' or the figure's edge, in inches
#: (constrained layout's default ``w_pad`` and ``h_pad``).
PAD = 3 / 72
#: Passes of measuring and placing at most: a panel's new size can change its ticks (and so
#: its labels' extents) once; the margins only grow from pass to pass, so this ends.
PASSES = 3

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_MATH = re.compile(r"\$\\mathdefault\{(.*)\}\$")
_POWER = re.compile(r"\^\{(-?\d+)\}")


class UnicodeLogFormatter(LogFormatterSciNotation):
    """Matplotlib's log-axis labels (the same ticks labelled, the same numbers) as plain text.

    ``10^{-6}`` in mathtext becomes ``10⁻⁶``, ``2\\times10^{-1}`` becomes
    ``2 × 10⁻¹`` (thin spaces) and a minus sign ``−``, as mathtext draws them; anything else
    is left as the parent class writes it.

    >>> f = UnicodeLogFormatter()
    >>> f.set_locs([1e-6, 1.0, 100.0])
    >>> [f(x) for x in (1e-6, 1.0, 100.0)]
    ['10⁻⁶', '10⁰', '10²']
    """

    def __call__(self, x: float, pos: int | None = None) -> str:
        """The label of tick value ``x`` (empty where the parent class leaves it empty)."""
        return _plain(super().__call__(x, pos))


def _plain(label: str) -> str:
    """A mathtext label of :class:`~matplotlib.ticker.LogFormatterSciNotation` as plain text."""
    match = _MATH.fullmatch(label)
    if match is None:
        return label
    text = match.group(1).replace(r"\times", "\u2009×\u2009")  # thin spaces, as mathtext spaces ×
    if "\\" in text or "{" in text.replace("^{", ""):
        return label  # not a form written here: leave it to mathtext
    text = _POWER.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    return text.replace("-", "−")


def finish(
    fig: Figure, grid: np.ndarray, *, legend: Legend | None, suptitle: Text | None, dpi: float
) -> None:
    """Make the log axes of ``fig`` cheap to draw, then place its panels (:func:`lay_out`).

    Call it once every panel is drawn: which minor ticks draw nothing
    depends on the final view limits.
    """
    for ax in grid.ravel():
        if ax.get_visible():
            for axis in (ax.xaxis, ax.yaxis):
                _cheap_log_axis(axis)
    lay_out(fig, grid, legend=legend, suptitle=suptitle, dpi=dpi)


def _cheap_log_axis(axis: Axis) -> None:
    """Plain-text labels on a log axis, and no minor ticks when they would draw nothing."""
    if axis.get_scale() != "log":
        return
    for formatter, setter in (
        (axis.get_major_formatter(), axis.set_major_formatter),
        (axis.get_minor_formatter(), axis.set_minor_formatter),
    ):
        if type(formatter) is LogFormatterSciNotation:
            setter(
                UnicodeLogFormatter(
                    base=axis.get_transform().base,
                    labelOnlyBase=formatter.labelOnlyBase,
                    minor_thresholds=formatter.minor_thresholds,
                )
            )
    tick = axis.get_minor_ticks(1)[0]  # the prototype minor tick: its style is the axis's
    if any(part.get_visible() for part in (tick.tick1line, tick.tick2line, tick.gridline)):
        return
    formatter = axis.get_minor_formatter()
    if not any(formatter.format_ticks(axis.get_minorticklocs())):
        axis.set_minor_locator(NullLocator())


def lay_out(
    fig: Figure, grid: np.ndarray, *, legend: Legend | None, suptitle: Text | None, dpi: float
) -> None:
    """Place the panels of ``grid`` (rows × columns) between the suptitle above and the legend below.

    Every margin is the extent of what lies in it (a panel's tick labels,
    axis labels and title; the suptitle; the legend), measured on the Agg
    renderer at ``dpi`` that ``savefig`` at that dpi reuses, plus
    :data:`PAD`; panels keep equal sizes, as on a grid.  The panels are
    measured where a first guess puts them, then placed; they are measured
    again only if their new size changed their ticks (and so, perhaps, the
    extent of their labels).  Panel titles sit at the top of their panel
    (``axes.titley = 1``, as matplotlib places them when nothing else is
    above a panel), raised above a y axis's offset text if there is one.
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    shown = fig.dpi
    fig.set_dpi(dpi)
    try:
        renderer = canvas.get_renderer()
        height = fig.get_size_inches()[1]
        if suptitle is not None:
            suptitle.set_y(1 - PAD / height)
        above = _extent(suptitle, renderer, dpi, top=True, height=height)
        below = _extent(legend, renderer, dpi, top=False, height=height)
        room = np.broadcast_to(GUESS[:, None, None], (4, *grid.shape))
        _place(fig, grid, room, above=above, below=below)
        measured = np.zeros_like(room)
        for _ in range(PASSES):
            ticks = _ticks(grid)
            measured = np.maximum(measured, _decorations(grid, renderer, dpi))
            _place(fig, grid, measured, above=above, below=below)
            if _ticks(grid) == ticks:
                break
        _raise_titles(grid, renderer, dpi)
    finally:
        fig.set_dpi(shown)


#: A first guess of a panel's decorations (inches beyond its left, right, bottom and top edges).
GUESS = np.array([0.6, 0.15, 0.5, 0.3])


def _ticks(grid: np.ndarray) -> list[list[float]]:
    """Every tick location of every shown panel: equal ticks are equal labels, equal extents."""
    out = []
    for ax in grid.ravel():
        if ax.get_visible():
            for axis in (ax.xaxis, ax.yaxis):
                out += [list(axis.get_majorticklocs()), list(axis.get_minorticklocs())]
    return out


def _extent(text: Text | Legend | None, renderer, dpi: float, *, top: bool, height: float) -> float:
    """How far into the figure (inches) a suptitle reaches from the top, or a legend from the bottom."""
    if text is None or not text.get_visible():
        return 0.0
    box = text.get_window_extent(renderer)
    return height - box.y0 / dpi if top else box.y1 / dpi


def _decorations(grid: np.ndarray, renderer, dpi: float) -> np.ndarray:
    """Each panel's decorations (inches beyond its left, right, bottom and top edges), 0 if hidden.

    What matplotlib's tight bounding box of a panel counts for a layout
    (axes, tick labels, axis labels, offset texts, title and texts), without
    the artists clipped to the panel.
    """
    out = np.zeros((4, *grid.shape))
    for index, ax in np.ndenumerate(grid):
        if not ax.get_visible():
            continue
        frame = ax.get_window_extent(renderer)
        boxes = [frame]
        boxes += [axis.get_tightbbox(renderer, for_layout_only=True) for axis in (ax.xaxis, ax.yaxis)]
        boxes += [t.get_window_extent(renderer) for t in ax.texts if t.get_visible()]
        title = _title_box(ax, renderer, dpi)
        if title is not None:
            boxes.append(title)
        box = Bbox.union([b for b in boxes if b is not None and b.width + b.height > 0])
        out[(slice(None), *index)] = [
            frame.x0 - box.x0,
            box.x1 - frame.x1,
            frame.y0 - box.y0,
            box.y1 - frame.y1,
        ]
    return np.maximum(out / dpi, 0.0)


def _title_box(ax: Axes, renderer, dpi: float) -> Bbox | None:
    """Where the panel's title will be (see :func:`_raise_titles`), one pixel wide, as for a layout."""
    title = ax.title
    if not (title.get_visible() and title.get_text()):
        return None
    box = title.get_window_extent(renderer)
    lift = _lift(ax, box, renderer, dpi)
    middle = (box.x0 + box.x1) / 2
    return Bbox.from_extents(middle - 0.5, box.y0 + lift, middle + 0.5, box.y1 + lift)


def _lift(ax: Axes, title: Bbox, renderer, dpi: float) -> float:
    """How far (pixels) the title must rise to clear the y axis's offset text (``1e−5``, ``+0.2``)."""
    offset = ax.yaxis.offsetText
    if not (offset.get_visible() and offset.get_text()):
        return 0.0
    return max(0.0, offset.get_window_extent(renderer).y1 + 2 / 72 * dpi - title.y0)


def _raise_titles(grid: np.ndarray, renderer, dpi: float) -> None:
    """Raise each title that an offset text would touch, once the panels are in place."""
    for ax in grid.ravel():
        if ax.get_visible() and ax.title.get_text():
            lift = _lift(ax, ax.title.get_window_extent(renderer), renderer, dpi)
            if lift > 0:
                x, y = ax.title.get_position()
                ax.title.set_position((x, y + lift / ax.get_window_extent(renderer).height))


def _place(fig: Figure, grid: np.ndarray, room: np.ndarray, *, above: float, below: float) -> None:
    """``subplots_adjust`` giving each column and row of panels the room its decorations take."""
    width, height = fig.get_size_inches()
    rows, cols = grid.shape
    left, right = room[0].max(axis=0), room[1].max(axis=0)  # per column
    bottom, top = room[2].max(axis=1), room[3].max(axis=1)  # per row
    wgap = (right[:-1] + left[1:]).max(initial=0.0) + 2 * PAD
    hgap = (bottom[:-1] + top[1:]).max(initial=0.0) + 2 * PAD
    x0, x1 = PAD + left[0], width - PAD - right[-1]
    y0, y1 = below + 2 * PAD + bottom[-1], height - above - 2 * PAD - top[0]
    panel_w = max((x1 - x0 - (cols - 1) * wgap) / cols, 0.1 * width / cols)
    panel_h = max((y1 - y0 - (rows - 1) * hgap) / rows, 0.1 * height / rows)
    fig.subplots_adjust(
        left=x0 / width,
        right=(x0 + cols * panel_w + (cols - 1) * wgap) / width,
        bottom=y0 / height,
        top=(y0 + rows * panel_h + (rows - 1) * hgap) / height,
        wspace=wgap / panel_w,
        hspace=hgap / panel_h,
    )
