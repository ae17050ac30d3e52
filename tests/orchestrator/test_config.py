"""Configuration composed through Hydra's compose API, as the CLI composes it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from orchestrator.config import ALL_EXCHANGES, load_config, load_dotenv
from orchestrator.config.paths import config_dir
from orchestrator.config.schema import (
    ArchiveKind,
    BusKind,
    Market,
    MomentumConfig,
    RunMode,
    Venue,
)
from orchestrator.errors import ConfigError

pytestmark = pytest.mark.unit

CONF = config_dir()


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_card_command_composes_okx_under_exchanges(compose):
    cfg = load_config(compose("+exchange=okx", "strategy=momentum"))
    assert list(cfg.exchanges) == ["okx"]
    okx = cfg.exchanges["okx"]
    assert okx.venue is Venue.okx and okx.market is Market.spot
    assert okx.ws_url == "wss://ws.okx.com:8443/ws/v5/public"
    assert isinstance(cfg.strategy, MomentumConfig)
    assert cfg.mode.name is RunMode.paper
    assert cfg.profile.bus is BusKind.inproc and cfg.profile.archive is ArchiveKind.local


def test_defaults_select_no_exchange(compose):
    cfg = load_config(compose())
    assert cfg.exchanges == {}


@pytest.mark.parametrize("override", ["exchange=[binance,okx]", "+exchange=[binance,okx]"])
def test_several_exchanges_land_side_by_side(compose, override):
    cfg = load_config(compose(override))
    assert sorted(cfg.exchanges) == ["binance", "okx"]
    assert cfg.exchanges["binance"].venue is Venue.binance
    assert cfg.exchanges["okx"].venue is Venue.okx


def test_exchange_without_plus_replaces_the_empty_default(compose):
    assert list(load_config(compose("exchange=okx_swap")).exchanges) == ["okx_swap"]


@pytest.mark.parametrize("name", group_options("exchange"))
def test_every_exchange_option_composes_and_validates(compose, name):
    cfg = load_config(compose(f"+exchange={name}"))
    ex = cfg.exchanges[name]
    assert ex.name == name and ex.symbols
    assert ex.credentials.api_key_env.endswith("_API_KEY")


def test_exchange_options_match_the_registry():
    assert tuple(group_options("exchange")) == tuple(sorted(ALL_EXCHANGES))


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, o) for g in ("strategy", "profile", "mode") for o in group_options(g)],
)
def test_every_group_option_composes(compose, group, option):
    extra = ["mode.confirm_live=true"] if (group, option) == ("mode", "live") else []
    cfg = load_config(compose(f"{group}={option}", *extra))
    value = getattr(cfg, group).name
    assert getattr(value, "value", value) == option


def test_frozen_objects_come_out(compose):
    cfg = load_config(compose("+exchange=okx"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run_name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.exchanges["okx"].ws_url = "wss://elsewhere"  # type: ignore[misc]


def test_value_override_inside_selected_exchange(compose):
    cfg = load_config(compose("+exchange=okx", "exchanges.okx.symbols=[SOL-USDT]"))
    assert cfg.exchanges["okx"].symbols == ["SOL-USDT"]


def test_misspelled_key_fails_naming_it(compose):
    with pytest.raises(ConfigCompositionException) as info:
        compose("strategy.lookbak=3")
    assert isinstance(info.value.__cause__, ConfigAttributeError | ConfigKeyError)
    assert "lookbak" in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (("+strategy.lookbak=3",), "strategy.lookbak"),
        (("+exchange=okx", "+exchanges.okx.wsurl=wss://x"), "exchanges.okx.wsurl"),
        (("+profile.bsu=redis",), "profile.bsu"),
        (("+runname=x",), "runname"),
    ],
)
def test_appended_unknown_key_is_rejected_by_load_config(compose, overrides, key):
    cfg = compose(*overrides)  # `+` appends bypass struct mode inside Hydra...
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(cfg)  # ...so load_config re-checks against the schemas


def test_wrong_type_fails_naming_key(compose):
    with pytest.raises(ConfigCompositionException) as info:
        compose("strategy.lookback=fifty")
    assert "strategy.lookback" in str(info.value.__cause__)


def test_bad_enum_value_fails(compose):
    with pytest.raises(ConfigCompositionException) as info:
        compose("profile.bus=kafka")
    assert "kafka" in str(info.value.__cause__)


def test_unknown_exchange_option_fails(compose):
    with pytest.raises(ConfigCompositionException, match="exchange/kraken"):
        compose("+exchange=kraken")


def test_env_overrides_endpoints(compose):
    compose_env = compose  # the fixture already cleared the variables
    cfg = load_config(compose_env())
    assert cfg.services.redis_url == "redis://127.0.0.1:6379/0"
    assert cfg.services.database_url.startswith("postgresql://")


def test_env_variables_win_over_yaml(compose, clean_env):
    clean_env.setenv("REDIS_URL", "redis://10.1.2.3:6380/4")
    clean_env.setenv("TIMESCALEDB_URL", "postgresql://ts@db.example:5433/market")
    clean_env.setenv("CELERY_BROKER_URL", "redis://broker:6379/7")
    clean_env.setenv("CELERY_RESULT_BACKEND", "redis://results:6379/8")
    s = load_config(compose()).services
    assert s.redis_url == "redis://10.1.2.3:6380/4"
    assert s.database_url == "postgresql://ts@db.example:5433/market"
    assert s.celery_broker_url == "redis://broker:6379/7"
    assert s.celery_result_backend == "redis://results:6379/8"


def test_bad_endpoint_scheme_is_a_config_error(compose, clean_env):
    clean_env.setenv("REDIS_URL", "http://:hunter2@host:1/0")
    with pytest.raises(ConfigError, match=r"services\.redis_url") as info:
        load_config(compose())
    assert "hunter2" not in str(info.value)


def test_supported_exchanges_rejects_other_selection(compose, clean_env):
    clean_env.setenv("SUPPORTED_EXCHANGES", "binance,binance_usdm")
    assert load_config(compose("+exchange=binance")).exchanges
    with pytest.raises(ConfigError, match=r"'okx' is not in SUPPORTED_EXCHANGES"):
        load_config(compose("+exchange=okx"))


def test_supported_exchanges_with_unknown_name(compose, clean_env):
    clean_env.setenv("SUPPORTED_EXCHANGES", "binance,kraken")
    with pytest.raises(ConfigError, match="kraken"):
        load_config(compose())


def test_live_mode_needs_explicit_opt_in(compose):
    with pytest.raises(ConfigError, match="confirm_live"):
        load_config(compose("mode=live"))
    assert load_config(compose("mode=live", "mode.confirm_live=true")).mode.name is RunMode.live


def test_empty_symbol_list_is_rejected(compose):
    with pytest.raises(ConfigError, match=r"exchanges\.okx\.symbols"):
        load_config(compose("+exchange=okx", "exchanges.okx.symbols=[]"))


def test_negative_duration_is_rejected(compose):
    with pytest.raises(ConfigError, match="duration"):
        load_config(compose("duration=-1"))


def test_dotenv_is_read_without_overriding(tmp_path: Path, clean_env):
    env = tmp_path / ".env"
    env.write_text(
        "# comment\n"
        "export REDIS_URL=redis://from-dotenv:6379/3\n"
        "SUPPORTED_EXCHANGES='okx'\n"
        'TIMESCALEDB_URL="postgresql://a@b/c"  \n'
        "\n"
    )
    clean_env.setenv("SUPPORTED_EXCHANGES", "binance")
    names = load_dotenv(env)
    import os

    assert os.environ["REDIS_URL"] == "redis://from-dotenv:6379/3"
    assert os.environ["TIMESCALEDB_URL"] == "postgresql://a@b/c"
    assert os.environ["SUPPORTED_EXCHANGES"] == "binance"  # already set: kept
    assert sorted(names) == ["REDIS_URL", "TIMESCALEDB_URL"]


def test_dotenv_bad_line_names_line_not_content(tmp_path: Path, clean_env):
    env = tmp_path / ".env"
    env.write_text("GOOD=1\nthis is the secret sauce\n")
    with pytest.raises(ConfigError, match=r":2: expected KEY=VALUE") as info:
        load_dotenv(env)
    assert "sauce" not in str(info.value)


def test_missing_dotenv_is_fine(tmp_path: Path):
    assert load_dotenv(tmp_path / "nope.env") == []


def test_archive_settings_come_from_the_config(compose):
    from orchestrator.data.archive import archive_settings

    cfg = load_config(compose("archive.ahead_days=5", "archive.retention_days.trades=30"))
    settings = archive_settings(cfg.archive)
    assert settings.ahead_days == 5
    assert settings.retention_days["trades"] == 30
    assert settings.retention_days["orders"] is None
    with pytest.raises(ConfigError, match=r"archive\.chunk_days must be >= 1"):
        load_config(compose("archive.chunk_days=0"))
    assert (
        archive_settings(
            load_config(compose("archive.read_connections=3")).archive
        ).read_connections
        == 3
    )
    assert archive_settings(load_config(compose()).archive).read_connections == 2
    with pytest.raises(ConfigError, match=r"archive\.read_connections"):
        load_config(compose("archive.read_connections=0"))
    assert archive_settings(load_config(compose()).archive).instrument_partitions == 4
    assert (
        archive_settings(
            load_config(compose("archive.instrument_partitions=1")).archive
        ).instrument_partitions
        == 1
    )
    with pytest.raises(ConfigError, match=r"archive\.instrument_partitions"):
        load_config(compose("archive.instrument_partitions=0"))


def test_publish_settings_are_checked(compose):
    cfg = load_config(compose("publish.snapshot_interval=null", "publish.deltas=false"))
    assert cfg.publish.snapshot_interval is None and not cfg.publish.deltas
    with pytest.raises(ConfigError, match=r"publish\.delta_capacity must be at least 1024"):
        load_config(compose("publish.delta_capacity=10"))
    with pytest.raises(ConfigError, match=r"publish\.snapshot_interval must be positive"):
        load_config(compose("publish.snapshot_interval=0"))
