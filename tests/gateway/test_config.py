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
    assert "01010012356" in str(exc)  # the error itself keeps the evidence (quarantine)...
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
