"""The demo's live screen: instruments, the flow of results, and the LIS link (Rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from gateway.catalogue import text
from gateway.demo.words import WORDS
from gateway.store.qc_counts import qc_counts
from gateway.store.queries import qc_by_instrument, summary
from gateway.web.i18n import label

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.demo.plan import DemoPlan
    from gateway.demo.qc import QcStory
    from simulators.lis import LisSimulator

#: the story's newest lines the screen shows
STORY_LINES = 4


def live_view(
    gateway: Gateway,
    plan: DemoPlan,
    lis: LisSimulator,
    elapsed: float,
    story: QcStory | None = None,
) -> Group:
    """One frame of the screen, read from the gateway's live state and the store."""
    lang = gateway.config.site.language
    words = WORDS[lang]
    engine = gateway.engine
    with engine.connect() as conn:
        s = summary(conn)
        qc = qc_by_instrument(conn)
        counts = qc_counts(conn)
    instruments = Table(title=words["instruments"], expand=True)
    for column in words["columns"]:
        instruments.add_column(column)
    for inst in gateway.config.instruments:
        live = gateway.live.instruments.get(inst.id)
        if live is None:
            continue
        instruments.add_row(
            inst.name or inst.id,
            plan.links.get(inst.id, ""),
            f"[green]{words['yes']}[/]" if live.connected else f"[red]{words['no']}[/]",
            str(live.messages),
            str(live.results),
            str(qc.get(inst.id, 0)),
            str(live.quarantined),
        )
    flow = Table(title=str(words["flow"]).format(s=elapsed), expand=True)
    for column in words["flow_columns"]:
        flow.add_column(column, justify="right")
    held = (
        "\n".join(f"{label(lang, 'reason', k)}: {v}" for k, v in sorted(s.held_by_reason.items()))
        or "0"
    )
    flow.add_row(
        str(s.received),
        held,
        str(s.by_state.get("queued", 0)),
        str(s.by_state.get("sent", 0)),
        str(s.by_state.get("acknowledged", 0)),
        str(s.by_state.get("rejected", 0)),
        str(s.qc),
        str(s.quarantined),
    )
    fwd = gateway.forwarder
    lis_line = Table.grid()
    state = (
        f"[green]{words['lis_up']}[/]"
        if fwd and fwd.connected
        else (f"[yellow]{words['lis_down']}[/]")
    )
    lis_line.add_row(
        str(words["lis"]).format(state=state, n=lis.received, web=gateway.config.web.listen)
    )
    judged = counts.judged
    qc_line = Table.grid()
    qc_line.add_row(
        text(
            lang,
            "demo.qc.live",
            runs=counts.runs,
            accepted=judged.get("accept", 0) + judged.get("pass", 0),
            warnings=judged.get("warning", 0),
            rejected=judged.get("reject", 0) + judged.get("fail", 0),
            opened=counts.lockouts_opened,
            lifted=counts.lockouts_lifted,
            held=s.held_by_reason.get("qc_lockout", 0),
        )
    )
    for line in story.log[-STORY_LINES:] if story is not None else ():
        qc_line.add_row(f"  {line}")
    return Group(instruments, flow, qc_line, lis_line)
