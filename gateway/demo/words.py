"""The demo screen's words in bokmål and English (``site.language`` picks one)."""

from __future__ import annotations

from typing import Any

WORDS: dict[str, dict[str, Any]] = {
    "nb": {
        "instruments": "Instrumenter",
        "columns": ("Instrument", "Kobling", "Tilkoblet", "Meldinger", "Svar", "QC", "Karantene"),
        "yes": "ja",
        "no": "nei",
        "flow": "Flyt etter {s:.0f} s",
        "flow_columns": (
            "Mottatt",
            "Holdt",
            "I kø",
            "Sendt",
            "Kvittert",
            "Avvist",
            "QC",
            "Karantene",
        ),
        "lis_up": "tilkoblet",
        "lis_down": "venter",
        "lis": "LIS: {state}   meldinger mottatt av LIS-simulatoren: {n}   "
        "web: http://{web}   Ctrl-C stopper",
        "serial": "seriell",
        "not_simulated": "ikke simulert",
        "pty_note": "{id}: seriell via pseudoterminal {device} ({baud} baud); "
        "simulatoren sitter i den andre enden",
        "tcp_note": "{id}: ingen pseudoterminal ({why}); simulatoren kjører over "
        "TCP 127.0.0.1:{port} i stedet for seriell",
        "dial_note": "{id}: gatewayen ringer ut til {url}; ingen simulator for det i demoen",
        "orders_note": "LIS-simulatoren sendte {n} bestillinger til arbeidslisten "
        "(kvittering: {codes}); analysatoren spør etter dem når prøven står i",
        "people_note": "kompetanse: {file} importert ({people} personer, {certifications} "
        "sertifiseringer); reglene for personer håndheves: {enforce}",
        "password_note": "pålogging på http://{web}: {people}, engangspassord for denne "
        "kjøringen: {password}",
    },
    "en": {
        "instruments": "Instruments",
        "columns": ("Instrument", "Link", "Connected", "Messages", "Results", "QC", "Quarantine"),
        "yes": "yes",
        "no": "no",
        "flow": "Flow after {s:.0f} s",
        "flow_columns": (
            "Received",
            "Held",
            "Queued",
            "Sent",
            "Acknowledged",
            "Rejected",
            "QC",
            "Quarantine",
        ),
        "lis_up": "connected",
        "lis_down": "waiting",
        "lis": "LIS: {state}   messages received by the LIS simulator: {n}   "
        "web: http://{web}   Ctrl-C stops",
        "serial": "serial",
        "not_simulated": "not simulated",
        "pty_note": "{id}: serial over pseudo-terminal {device} ({baud} baud); "
        "the simulator is at the other end",
        "tcp_note": "{id}: no pseudo-terminal ({why}); simulated over TCP 127.0.0.1:{port} "
        "instead of a serial port",
        "dial_note": "{id}: the gateway dials out to {url}; the demo has no simulator for that",
        "orders_note": "the LIS simulator sent {n} orders to the worklist "
        "(acknowledged: {codes}); the analyser asks for them when the tube is loaded",
        "people_note": "competence: {file} imported ({people} people, {certifications} "
        "certifications); people rules enforced: {enforce}",
        "password_note": "sign in at http://{web} as {people}; one-time password for this "
        "run: {password}",
    },
}
