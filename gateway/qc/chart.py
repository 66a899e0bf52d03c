"""The Levey-Jennings chart of one control series: plain points in, SVG text or PDF bytes out.

Values are plotted in run order (evenly spaced, dated below), with the target mean and the
±1/2/3 SD lines of the target each point was judged against. When the target changes (a new
lot, a recomputed target) the lines break there: a dotted vertical line, then the new lines.
Points are coloured by their verdict, the rules that fired are written beside the point judged,
and the other points involved are ringed. Each point carries its tooltip (date, value, verdict,
rules, comments) as an SVG ``<title>``, so the page needs no JavaScript.

matplotlib is imported inside the functions (only the chart pays for it) and used through
``Figure`` objects, never pyplot: no global state, no GUI backend, safe on worker threads.
Every text a reader sees comes in ``ChartTexts`` (from the catalogues).
"""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from gateway.qc.points import QcPoint

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the verdict colours (green, amber, red, grey), readable in greyscale print by their marker
VERDICT_STYLE: Final[Mapping[str, tuple[str, str]]] = {
    "accept": ("#1a7f37", "o"),
    "pass": ("#1a7f37", "o"),
    "warning": ("#b35900", "s"),
    "reject": ("#cf222e", "X"),
    "fail": ("#cf222e", "X"),
    "no_target": ("#6e7781", "D"),
    "": ("#6e7781", "D"),
}
#: the SD lines: multiple of SD, colour, line style
SD_LINES: Final[tuple[tuple[int, str, Literal["-", "--", ":"]], ...]] = (
    (3, "#cf222e", "-"),
    (2, "#b35900", "--"),
    (1, "#8c959f", ":"),
)
MAX_TICKS: Final = 12
COMMENT_COLOUR: Final = "#0550ae"
#: matplotlib's settings (rc_context) are process-wide and the web renders on worker threads
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ChartTexts:
    """What the chart writes, in the reader's language."""

    title: str
    y_label: str
    x_label: str
    mean: str  # the mean line's label, e.g. "Mean" / "Middelverdi"
    sd: str  # "SD"
    target_change: str  # "New target" / "Ny target"
    empty: str  # written on a chart without numeric values
    commented: str = "Commented"  # the legend's label of a commented point
    verdicts: Mapping[str, str] = field(default_factory=dict)  # verdict -> legend label
    #: a point's time as a tick label (the site's zone), e.g. "07.12"
    tick: Callable[[datetime], str] = lambda at: at.strftime("%d.%m")


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive points judged against one target: indexes [first, last]."""

    first: int
    last: int
    mean: float
    sd: float


def segments(points: Sequence[QcPoint]) -> list[Segment]:
    """The stretches of one target; points without a target belong to none (no lines)."""
    found: list[Segment] = []
    for index, point in enumerate(points):
        if not point.has_target or point.target_mean is None or point.target_sd is None:
            continue
        last = found[-1] if found else None
        if last is not None and (last.mean, last.sd) == (point.target_mean, point.target_sd):
            found[-1] = Segment(last.first, index, last.mean, last.sd)
        else:
            found.append(Segment(index, index, point.target_mean, point.target_sd))
    return found


def _gid(kind: str, *parts: object) -> str:
    return "-".join(["qc", kind, *(str(p) for p in parts)])


def figure(
    points: Sequence[QcPoint], texts: ChartTexts, *, width: float = 10.0, height: float = 4.2
) -> Figure:
    """The chart of ``points`` (one series, in time order) as a matplotlib Figure."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(texts.title, loc="left", fontsize=11)
    ax.set_ylabel(texts.y_label)
    ax.set_xlabel(texts.x_label)
    ax.grid(axis="x", color="#eaeef2", linewidth=0.6)
    numeric = [(i, p, p.value) for i, p in enumerate(points) if p.value is not None]
    if not numeric:
        ax.text(0.5, 0.5, texts.empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig

    spans = segments(points)
    for number_of, segment in enumerate(spans):
        left, right = segment.first - 0.4, segment.last + 0.4
        if number_of > 0:
            at = segment.first - 0.5
            ax.axvline(at, color="#57606a", linestyle=":", linewidth=1.0, gid=_gid("target-change"))
            ax.text(
                at,
                1.01,
                " " + texts.target_change,
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                color="#57606a",
                va="bottom",
            )
        ax.hlines(
            segment.mean, left, right, colors="#24292f", linewidth=1.2, gid=_gid("mean", number_of)
        )
        for k, colour, style in SD_LINES:
            for sign, name in ((1, "p"), (-1, "m")):
                ax.hlines(
                    segment.mean + sign * k * segment.sd,
                    left,
                    right,
                    colors=colour,
                    linestyles=style,
                    linewidth=0.9,
                    gid=_gid("sd", f"{name}{k}", number_of),
                )
    if spans:
        last = spans[-1]
        right_edge = last.last + 0.5
        ax.text(right_edge, last.mean, f" {texts.mean}", fontsize=7, va="center")
        for k, colour, _style in SD_LINES:
            for sign, mark in ((1, "+"), (-1, "−")):
                ax.text(
                    right_edge,
                    last.mean + sign * k * last.sd,
                    f" {mark}{k} {texts.sd}",
                    fontsize=7,
                    va="center",
                    color=colour,
                )

    by_id = {p.qc_result_id: i for i, p in enumerate(points)}
    ringed: set[int] = set()
    ax.plot(
        [i for i, _p, _v in numeric],
        [v for _i, _p, v in numeric],
        color="#8c959f",
        linewidth=0.7,
        zorder=2,
    )
    for index, point, value in numeric:
        colour, marker = VERDICT_STYLE.get(point.verdict, VERDICT_STYLE[""])
        ax.plot(
            [index],
            [value],
            marker=marker,
            color=colour,
            markersize=6,
            linestyle="none",
            markeredgecolor="white",
            markeredgewidth=0.6,
            zorder=4,
            gid=_gid("point", point.qc_result_id),
        )
        rules = list(dict.fromkeys(v.rule for v in point.violations))
        if rules:
            ax.annotate(
                ", ".join(rules),
                (index, value),
                xytext=(4, 7),
                textcoords="offset points",
                fontsize=7,
                color=colour,
                zorder=5,
                gid=_gid("rule", point.qc_result_id),
            )
        for violation in point.violations:
            ringed.update(by_id[r] for r in violation.runs if r in by_id and by_id[r] != index)
    for index in sorted(ringed):
        ring_at = points[index].value
        if ring_at is not None:
            ax.plot(
                [index],
                [ring_at],
                marker="o",
                markersize=11,
                markerfacecolor="none",
                markeredgecolor="#cf222e",
                linestyle="none",
                zorder=3,
            )

    commented = [(i, p, v) for i, p, v in numeric if p.comments]
    for index, point, value in commented:
        ax.plot(
            [index],
            [value],
            marker="s",
            markersize=13,
            markerfacecolor="none",
            markeredgecolor=COMMENT_COLOUR,
            markeredgewidth=1.1,
            linestyle="none",
            zorder=3,
            gid=_gid("comment", point.qc_result_id),
        )

    values = [v for _i, _p, v in numeric]
    low, high = min(values), max(values)
    for segment in spans:
        low = min(low, segment.mean - 3.5 * segment.sd)
        high = max(high, segment.mean + 3.5 * segment.sd)
    pad = (high - low) * 0.05 or 1.0
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlim(-0.7, len(points) - 0.3 + (0.9 if spans else 0))
    step = max(1, -(-len(points) // MAX_TICKS))
    ticks = list(range(0, len(points), step))
    ax.set_xticks(ticks, [texts.tick(points[i].at) for i in ticks], fontsize=8)

    shown = list(dict.fromkeys(p.verdict for _i, p, _v in numeric))
    handles = [
        Line2D(
            [],
            [],
            marker=VERDICT_STYLE.get(v, VERDICT_STYLE[""])[1],
            linestyle="none",
            color=VERDICT_STYLE.get(v, VERDICT_STYLE[""])[0],
            label=texts.verdicts.get(v, v),
        )
        for v in shown
    ]
    if commented:
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                markersize=9,
                linestyle="none",
                markerfacecolor="none",
                markeredgecolor=COMMENT_COLOUR,
                label=texts.commented,
            )
        )
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            fontsize=7,
            ncols=len(handles),
            frameon=False,
            bbox_to_anchor=(0, -0.16),
        )
    return fig


SVG_NS: Final = "http://www.w3.org/2000/svg"
XLINK_NS: Final = "http://www.w3.org/1999/xlink"
#: SVG presentation attributes matplotlib's inline styles map to (anything else is dropped)
PRESENTATION: Final = frozenset(
    {
        "fill",
        "fill-opacity",
        "fill-rule",
        "stroke",
        "stroke-width",
        "stroke-opacity",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-dasharray",
        "stroke-dashoffset",
        "opacity",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "text-anchor",
    }
)
_POINT_ID = re.compile(r"^qc-point-(\d+)$")


def _style_to_attributes(element: ET.Element) -> None:
    style = element.attrib.pop("style", None)
    for part in (style or "").split(";"):
        name, sep, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if sep and name in PRESENTATION and name not in element.attrib:
            element.set(name, value)


def page_safe(raw: str, titles: Mapping[int, str]) -> str:
    """matplotlib's SVG made fit to inline in a page under ``style-src 'self'`` (no inline
    styles allowed): each ``style="..."`` becomes presentation attributes, the ``<style>``
    element's one rule moves to the root, the metadata goes; each point's group gets its
    ``<title>`` (the tooltip) and ``class="qc-point"`` with its qc_result id."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    root = ET.fromstring(raw)
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{{{SVG_NS}}}metadata", f"{{{SVG_NS}}}style"):
                parent.remove(child)
    root.set("stroke-linejoin", "round")
    root.set("stroke-linecap", "butt")
    root.set("class", "lj-chart")
    for element in root.iter():
        _style_to_attributes(element)
        found = _POINT_ID.match(element.get("id", ""))
        if found is None:
            continue
        qc_result_id = int(found.group(1))
        element.set("class", "qc-point")
        element.set("data-qc-result-id", str(qc_result_id))
        title = titles.get(qc_result_id, "")
        if title:
            node = ET.Element(f"{{{SVG_NS}}}title")
            node.text = title
            element.insert(0, node)
    return ET.tostring(root, encoding="unicode")


def svg(points: Sequence[QcPoint], texts: ChartTexts, titles: Mapping[int, str]) -> str:
    """The chart as SVG text (one ``<svg>`` element, ready to inline in a page); ``titles``:
    each point's tooltip by qc_result id, added as the point's ``<title>``."""
    import matplotlib

    buffer = io.StringIO()
    with _LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "trygg"}):
        figure(points, texts).savefig(buffer, format="svg", metadata={"Date": None})
    return page_safe(buffer.getvalue(), titles)


def pdf(figures: Sequence[Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """Figures as the pages of one PDF (A4 landscape-sized figures print best)."""
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    info: dict[str, Any] = {"Creator": "Trygg", "CreationDate": None, **(metadata or {})}
    with _LOCK, PdfPages(buffer, metadata=info) as pages:
        for fig in figures:
            pages.savefig(fig)
    return buffer.getvalue()
