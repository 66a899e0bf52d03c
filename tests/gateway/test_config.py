"""Config loading: the shipped files validate, and errors name file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["demo.toml", "site.example.toml"])
def test_shipped_configs_validate(name: str) -> None:
    config = load_config(ROOT / "config" / name)
    assert config.instruments and config.tests


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[site]\nname = "x"\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}: site.colour: unknown key" in str(info.value)


def test_bad_instrument_url_names_the_index_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[site]\nname = "x"\n[[instruments]]\nid = "a"\ndriver = "hl7_mllp"\n'
        'url = "tcp://127.0.0.1:5101"\n[[instruments]]\nid = "b"\ndriver = "hl7_mllp"\n'
        'url = "ftp://nowhere"\n',
    )
    with pytest.raises(ConfigError, match=r"instruments\[1\]\.url: .*scheme"):
        load_config(path)


def test_unknown_driver_and_missing_site(tmp_path: Path) -> None:
    path = write(tmp_path, '[[instruments]]\nid = "a"\ndriver = "nope"\nurl = "tcp://h:1"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "site: required key is missing" in text
    assert "instruments[0].driver: unknown driver 'nope'" in text


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[site\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_duplicate_instrument_ids(tmp_path: Path) -> None:
    inst = '[[instruments]]\nid = "a"\ndriver = "hl7_mllp"\nurl = "tcp://127.0.0.1:1"\n'
    with pytest.raises(ConfigError, match="used twice"):
        load_config(write(tmp_path, '[site]\nname = "x"\n' + inst + inst))


def test_protocol_errors_log_without_their_bytes() -> None:
    from gateway.errors import RemoteProtocolError, TransportError, loggable

    exc = RemoteProtocolError("frame too long", field="mllp", data=b"PID|1||01010012356")
    assert exc.data == b"PID|1||01010012356"  # the error keeps the evidence (quarantine)...
    assert "01010012356" not in str(exc)  # ...but its text never quotes a patient segment
    assert loggable(exc) == "RemoteProtocolError: mllp: frame too long"  # ...logs do not
    assert loggable(TransportError("tcp://h:1: refused")) == "TransportError: tcp://h:1: refused"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("serial:///dev/ttyS0", "tcp-listen://host:port or tcp://host:port"),
        ("tcp-listen://127.0.0.1", "port"),
    ],
)
def test_bad_orders_url_is_named(tmp_path: Path, url: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[site]\nname = "x"\n[lis]\nurl = "tcp://127.0.0.1:2575"\norders_url = "{url}"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "orders_url" in str(info.value) and expected in str(info.value)


def site_with(web: str, *urls: str, orders_url: str = "") -> str:
    """A config text with a web listener, one hl7_mllp instrument per URL and maybe a LIS."""
    text = f'[site]\nname = "x"\n[web]\nlisten = "{web}"\n'
    if not web.startswith(("127.", "[::1]", "localhost")):
        text += "allow_remote = true\n"
    if orders_url:
        text += f'[lis]\nurl = "tcp://127.0.0.1:2575"\norders_url = "{orders_url}"\n'
    for index, url in enumerate(urls):
        text += f'[[instruments]]\nid = "i{index}"\ndriver = "hl7_mllp"\nurl = "{url}"\n'
    return text


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:-1", ":8470"])
def test_web_listen_needs_a_port_a_socket_can_take(tmp_path: Path, listen: str) -> None:
    path = write(tmp_path, site_with(listen))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: web.listen: ")
    assert repr(listen) in str(info.value)


def test_check_config_refuses_an_out_of_range_web_port(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    path = write(tmp_path, site_with("127.0.0.1:99999"))
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "web.listen" in result.stderr and "'127.0.0.1:99999'" in result.stderr


WEB = "127.0.0.1:8470"


@pytest.mark.parametrize(
    ("web", "urls", "orders_url", "expected"),
    [
        # an instrument on the web's port
        (WEB, ["tcp-listen://127.0.0.1:8470"], "", "instruments[0].url and web.listen"),
        # two instruments on one port (the later one is named first: it is the one to move)
        (
            WEB,
            ["tcp-listen://127.0.0.1:5101", "tcp-listen://127.0.0.1:5101"],
            "",
            "instruments[1].url and instruments[0].url both listen on 127.0.0.1:5101",
        ),
        # the LIS's orders port on the web's port, and on an instrument's
        (WEB, [], "tcp-listen://127.0.0.1:8470", "lis.orders_url and web.listen"),
        (
            WEB,
            ["tcp-listen://127.0.0.1:5101"],
            "tcp-listen://127.0.0.1:5101",
            "lis.orders_url and instruments[0].url both listen on 127.0.0.1:5101",
        ),
        # 0.0.0.0 binds every address, so it clashes with any host on that port
        (
            "0.0.0.0:8470",
            ["tcp-listen://10.1.2.3:8470"],
            "",
            "instruments[0].url and web.listen both listen on port 8470 "
            "(10.1.2.3 and 0.0.0.0 overlap)",
        ),
        (WEB, ["tcp-listen://0.0.0.0:8470"], "", "instruments[0].url and web.listen"),
        # localhost binds 127.0.0.1 (and ::1) too
        ("localhost:8470", ["tcp-listen://127.0.0.1:8470"], "", "(127.0.0.1 and localhost"),
        ("[::1]:8470", ["tcp-listen://[::1]:8470"], "", "web.listen both listen on [::1]:8470"),
    ],
)
def test_two_listeners_on_one_port_are_refused(
    tmp_path: Path, web: str, urls: list[str], orders_url: str, expected: str
) -> None:
    path = write(tmp_path, site_with(web, *urls, orders_url=orders_url))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and expected in text
    assert text.endswith("give each its own port")


@pytest.mark.parametrize(
    ("web", "urls", "orders_url"),
    [
        # different hosts on one port: each binds its own address
        (WEB, ["tcp-listen://10.1.2.3:8470"], ""),
        # a client (tcp://) to the web's port listens on nothing
        (WEB, ["tcp://127.0.0.1:8470"], ""),
        # port 0 takes any free port: two of them never clash
        (WEB, ["tcp-listen://127.0.0.1:0", "tcp-listen://127.0.0.1:0"], ""),
        (WEB, ["tcp-listen://127.0.0.1:5101"], "tcp-listen://127.0.0.1:5102"),
        # the LIS listens for our orders connection: its port is on the LIS's machine
        (WEB, [], "tcp://127.0.0.1:8470"),
    ],
)
def test_listeners_on_their_own_ports_pass(
    tmp_path: Path, web: str, urls: list[str], orders_url: str
) -> None:
    config = load_config(write(tmp_path, site_with(web, *urls, orders_url=orders_url)))
    assert config.web.port == int(web.rpartition(":")[2])


def test_disabled_listeners_do_not_clash(tmp_path: Path) -> None:
    text = site_with(WEB, "tcp-listen://127.0.0.1:8470")
    clash = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"both listen on 127\.0\.0\.1:8470"):
        load_config(clash)
    # a disabled web or instrument binds nothing, so the same port is free for the other
    web_off = text.replace("[web]\n", "[web]\nenabled = false\n")
    assert not load_config(write(tmp_path, web_off)).web.enabled
    instrument_off = text + "enabled = false\n"
    assert not load_config(write(tmp_path, instrument_off)).instruments[0].enabled


def lis_toml(url: str, **keys: str) -> str:
    lines = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
    return f'[site]\nname = "x"\n[lis]\nurl = "{url}"\n{lines}'


@pytest.mark.parametrize(
    "url",
    ["tcp://127.0.0.1:2575", "tcp-listen://0.0.0.0:2575", "serial:///dev/ttyS0?baudrate=9600"],
)
def test_the_lis_url_takes_the_instruments_schemes(tmp_path: Path, url: str) -> None:
    lis = load_config(write(tmp_path, lis_toml(url))).lis
    assert lis is not None and lis.url == url and lis.tls_settings is None and not lis.trace


def test_a_tls_lis_link_with_a_ca_and_a_client_certificate(tmp_path: Path) -> None:
    from tests.tls import make_tls_files

    files = make_tls_files(tmp_path)
    text = lis_toml(
        "tls://127.0.0.1:2576",
        tls_ca_file=str(files.ca_file),
        tls_cert_file=str(files.client_cert_file),
        tls_key_file=str(files.client_key_file),
    )
    lis = load_config(write(tmp_path, text + "trace = true\n")).lis
    assert lis is not None and lis.trace
    settings = lis.tls_settings
    assert settings is not None
    assert (settings.ca_file, settings.cert_file, settings.key_file) == (
        files.ca_file,
        files.client_cert_file,
        files.client_key_file,
    )


def test_bad_tls_settings_name_their_key(tmp_path: Path) -> None:
    from tests.tls import make_tls_files

    files = make_tls_files(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = [
        (lis_toml("tls://127.0.0.1"), "lis.url: .*port: missing"),
        (lis_toml("http://lis:80"), "lis.url: must be tcp://host:port, .*tls://host:port"),
        (
            lis_toml("tls://127.0.0.1:2576", tls_ca_file=str(tmp_path / "absent.pem")),
            "lis.tls_ca_file: no such file",
        ),
        (
            lis_toml("tls://127.0.0.1:2576", tls_ca_file=str(junk)),
            "lis: tls_ca_file: .*no usable CA certificate",
        ),
        (
            lis_toml("tls://127.0.0.1:2576", tls_key_file=str(files.client_key_file)),
            "lis: tls_key_file: a key needs its certificate",
        ),
        (
            lis_toml(
                "tls://127.0.0.1:2576",
                tls_cert_file=str(files.client_cert_file),
                tls_key_file=str(junk),
            ),
            "lis: tls_cert_file and tls_key_file: ",
        ),
        (
            lis_toml("tcp://127.0.0.1:2575", tls_ca_file=str(files.ca_file)),
            'lis: tls_ca_file: only used with url = "tls://host:port"',
        ),
    ]
    for text, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            load_config(write(tmp_path, text))


# --- issue 9: a silent peer never blocks an instrument ----------------------------------------


def instrument_with(url: str, keys: str) -> str:
    return (
        f'[site]\nname = "x"\n[[instruments]]\nid = "a"\ndriver = "hl7_mllp"\n'
        f'url = "{url}"\n{keys}\n'
    )


def test_the_silent_peer_keys_default_and_reach_the_session(tmp_path: Path) -> None:
    from drivers.transports import IdleLimits

    config = load_config(write(tmp_path, instrument_with("tcp-listen://127.0.0.1:5101", "")))
    (instrument,) = config.instruments
    assert instrument.connections == "newest"
    assert instrument.idle_limits == IdleLimits(idle_s=300.0, partial_s=30.0)
    keys = 'idle_timeout_s = 0\npartial_timeout_s = 5\nconnections = "parallel"'
    config = load_config(write(tmp_path, instrument_with("tcp-listen://127.0.0.1:5101", keys)))
    assert config.instruments[0].idle_limits == IdleLimits(idle_s=None, partial_s=5.0)
    # a short idle deadline cuts the default partial one to it
    config = load_config(
        write(tmp_path, instrument_with("tcp://127.0.0.1:5101", "idle_timeout_s = 10"))
    )
    assert config.instruments[0].idle_limits == IdleLimits(idle_s=10.0, partial_s=10.0)


@pytest.mark.parametrize(
    ("url", "keys", "key", "expected"),
    [
        ("tcp-listen://127.0.0.1:5101", 'connections = "all"', "connections", "'newest'"),
        ("tcp-listen://127.0.0.1:5101", "idle_timeout_s = 0.5", "idle_timeout_s", "0 (never"),
        ("tcp-listen://127.0.0.1:5101", "idle_timeout_s = -1", "idle_timeout_s", "got -1"),
        ("tcp-listen://127.0.0.1:5101", "partial_timeout_s = 0", "partial_timeout_s", "1-3600"),
        (
            "tcp-listen://127.0.0.1:5101",
            "idle_timeout_s = 20\npartial_timeout_s = 60",
            "partial_timeout_s",
            "longer than idle_timeout_s",
        ),
        ("tcp://127.0.0.1:5101", 'connections = "single"', "connections", "tcp-listen://"),
        ("serial:///dev/ttyS0", "idle_timeout_s = 60", "idle_timeout_s", "not a serial line"),
    ],
)
def test_bad_silent_peer_keys_are_named(
    tmp_path: Path, url: str, keys: str, key: str, expected: str
) -> None:
    path = write(tmp_path, instrument_with(url, keys))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: instruments[0]") and key in message, message
    assert expected in message, message


def lis_with(keys: str, orders_url: str = "tcp-listen://127.0.0.1:2577") -> str:
    orders = f'orders_url = "{orders_url}"\n' if orders_url else ""
    return f'[site]\nname = "x"\n[lis]\nurl = "tcp://127.0.0.1:2575"\n{orders}{keys}\n'


def test_the_order_port_has_its_own_silent_peer_keys(tmp_path: Path) -> None:
    from drivers.transports import IdleLimits

    keys = 'orders_connections = "single"\norders_idle_timeout_s = 120'
    lis = load_config(write(tmp_path, lis_with(keys))).lis
    assert lis is not None and lis.orders_connections == "single"
    assert lis.orders_idle_limits == IdleLimits(idle_s=120.0, partial_s=30.0)


@pytest.mark.parametrize(
    ("keys", "orders_url", "key", "expected"),
    [
        (
            'orders_connections = "many"',
            "tcp-listen://127.0.0.1:2577",
            "orders_connections",
            "'newest'",
        ),
        ("orders_idle_timeout_s = 0.1", "tcp-listen://127.0.0.1:2577", "orders_idle", "0 (never"),
        ('orders_connections = "single"', "tcp://127.0.0.1:2577", "orders_connections", "listen"),
        ("orders_idle_timeout_s = 60", "", "orders_idle_timeout_s", "only used with orders_url"),
    ],
)
def test_bad_order_port_keys_are_named(
    tmp_path: Path, keys: str, orders_url: str, key: str, expected: str
) -> None:
    path = write(tmp_path, lis_with(keys, orders_url))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: lis") and key in message and expected in message, message


def test_check_config_names_a_bad_connections_policy(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app

    path = write(tmp_path, instrument_with("tcp-listen://127.0.0.1:5101", 'connections = "x"'))
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "instruments[0].connections" in result.stderr


def test_the_lis_section_survives_the_workers_round_trip(tmp_path: Path) -> None:
    """The LIS worker validates a JSON dump of [lis] again, where every key is given."""
    from gateway.config import LisConfig

    for orders in ("", "tcp-listen://127.0.0.1:2577", "tcp://127.0.0.1:2577"):
        lis = load_config(write(tmp_path, lis_with("", orders))).lis
        assert lis is not None
        assert LisConfig.model_validate_json(lis.model_dump_json()) == lis


_QC_SITE = (
    '[site]\nname = "x"\n'
    '[[instruments]]\nid = "afinion-1"\ndriver = "astm_afinion2"\nurl = "tcp://127.0.0.1:5101"\n'
    '[[instruments]]\nid = "afinion-2"\ndriver = "astm_afinion2"\nurl = "tcp://127.0.0.1:5102"\n'
    '[[instruments]]\nid = "bench-1"\ndriver = "hl7_mllp"\nurl = "tcp://127.0.0.1:5103"\n'
)


def test_qc_entries_resolve_instrument_then_model_then_everyone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        _QC_SITE + '[[qc]]\ntest = "HbA1c"\ninstrument = "afinion-1"\nrules = "1-3s"\n'
        '[[qc]]\ntest = "HbA1c"\ninstrument = "astm_afinion2"\nrules = "1-3s,2-2s"\n'
        '[[qc]]\ntest = "HbA1c"\nrules = "1-3s,2-2s,R-4s"\nschedule = "weekly"\n',
    )
    config = load_config(path)
    own, model, anyone = (config.qc_for(i, "HbA1c") for i in ("afinion-1", "afinion-2", "bench-1"))
    assert own is not None and own.rules == "1-3s"
    assert model is not None and model.rules == "1-3s,2-2s"
    assert anyone is not None and anyone.schedule == "weekly"
    assert config.qc_for("afinion-1", "CRP") is None
    from gateway.rules import context_from_config

    context = context_from_config(config)
    assert context.qc[("afinion-2", "HbA1c")] == model
    assert ("afinion-1", "CRP") not in context.qc


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('test = "HbA1c"\nrules = "1-3s,2-3s"', "unknown Westgard rule '2-3s'"),
        ('test = "HbA1c"\ninstrument = "nowhere"', "qc[0].instrument 'nowhere' is neither"),
        ('test = "HbA1c"\nschedule = "every_n"', 'schedule "every_n" needs every_n >= 1'),
        ('test = "HbA1c"\nlockout = "maybe"', "qc[0].lockout"),
        ('test = "HbA1c"\n[[qc]]\ntest = "HbA1c"', "qc[1] configures test 'HbA1c' twice"),
    ],
)
def test_bad_qc_entries_are_named(tmp_path: Path, entry: str, expected: str) -> None:
    path = write(tmp_path, _QC_SITE + "[[qc]]\n" + entry + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
