"""`trygg check-config`: load and validate a site config, and say what it describes."""

from __future__ import annotations

from gateway.cli.common import ConfigOption, console, load


def check_config(config: ConfigOption) -> None:
    """Validate a config file; errors name the file, the key and the problem."""
    cfg = load(config)
    console.print(
        f"[green]OK[/] {config}: site {cfg.site.name}, {len(cfg.instruments)} instrument(s), "
        f"{len(cfg.tests)} test mapping(s), LIS {cfg.lis.url if cfg.lis else 'none'}, "
        f"MQTT {cfg.mqtt.url if cfg.mqtt else 'off'}"
    )
