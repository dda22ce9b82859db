"""Settings from ``SETBRIDGE_<SECTION>__<KEY>`` variables: on top of the file, under the caller's
overrides, every problem named by its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from setbridge.config import load_settings
from setbridge.errors import ConfigError


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nhost = "broker.lan"\nport = 1884\n[offload]\nwatch = ["/media/a"]\n')
    return path


def test_variables_override_the_file_and_the_caller_overrides_both(config, monkeypatch):
    monkeypatch.setenv("SETBRIDGE_MQTT__PORT", "18830")
    monkeypatch.setenv("setbridge_hub__set", "stage-b")  # names in any case
    monkeypatch.setenv("SETBRIDGE_MQTT__TLS__CA", "/etc/ssl/stage-ca.pem")  # a section inside a section
    monkeypatch.setenv("SETBRIDGE_OFFLOAD__WATCH", '["/media/b", "/media/c"]')  # a list is JSON
    monkeypatch.setenv("SETBRIDGE_SPEECH__PHRASES", '{"cut": ["Cut  It"]}')
    s = load_settings(config, mqtt={"host": "127.0.0.1"})
    assert (s.mqtt.host, s.mqtt.port) == ("127.0.0.1", 18830)
    assert s.hub.set == "stage-b" and s.mqtt.tls.ca == Path("/etc/ssl/stage-ca.pem")
    assert s.offload.watch == [Path("/media/b"), Path("/media/c")]
    assert s.speech.phrases == {"cut": ["cut it"]}  # validated as if it came from the file


def test_a_whole_section_can_be_one_json_variable(monkeypatch):
    monkeypatch.setenv("SETBRIDGE_HUB", '{"id": "hub-9", "heartbeat_s": 0.5}')
    s = load_settings(None)
    assert (s.hub.id, s.hub.heartbeat_s) == ("hub-9", 0.5)


def test_other_setbridge_variables_are_not_settings(monkeypatch):
    monkeypatch.setenv("SETBRIDGE_TEST_WORKERS", "4")
    monkeypatch.setenv("SETBRIDGE_", "x")
    assert load_settings(None).mqtt.port == 1883


def test_a_bad_variable_is_named_in_one_line(config, monkeypatch):
    monkeypatch.setenv("SETBRIDGE_MQTT__PROT", "1")
    monkeypatch.setenv("SETBRIDGE_MQTT__PORT", "eighty")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    lines = info.value.lines
    assert any(line.startswith("SETBRIDGE_MQTT__PROT: mqtt.prot: unknown key") for line in lines), lines
    assert any(line.startswith("SETBRIDGE_MQTT__PORT: mqtt.port:") and "'eighty'" in line for line in lines), lines
    assert not any(str(config) in line for line in lines), "the file is not to blame"


def test_a_list_that_is_not_json_says_how_to_write_it(monkeypatch):
    monkeypatch.setenv("SETBRIDGE_OFFLOAD__WATCH", "/media/a")
    with pytest.raises(ConfigError, match=r"SETBRIDGE_OFFLOAD__WATCH: not valid JSON .*given as JSON") as info:
        load_settings(None)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, meant", [
    ("SETBRIDGE_MQT__PORT", "SETBRIDGE_MQTT__PORT"),       # a misspelt section
    ("SETBRIDGE_MQTT_PORT", "SETBRIDGE_MQTT__PORT"),       # one underscore where two belong
    ("SETBRIDGE_MQTT_TLS__CA", "SETBRIDGE_MQTT__TLS__CA"),
    ("setbridge_web_data_dir", "SETBRIDGE_WEB__DATA_DIR"),
    ("SETBRIDGE_XYZZY__PORT", None),                        # nothing close: no guess, still named
])
def test_a_misspelt_variable_is_named_not_ignored(monkeypatch, name, meant):
    monkeypatch.setenv(name, "18830")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    (line,) = info.value.lines
    assert line.startswith(f"{name}: names no setting"), line
    assert (f"did you mean {meant}?" in line) if meant else "did you mean" not in line, line


def test_config_check_names_a_misspelt_variable(monkeypatch, capsys):
    from setbridge.cli import main

    monkeypatch.setenv("SETBRIDGE_MQTT_PORT", "18830")
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "check"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "SETBRIDGE_MQTT_PORT: names no setting; did you mean SETBRIDGE_MQTT__PORT?" in err, err


def test_settings_built_in_code_read_neither_variables_nor_a_file(monkeypatch):
    from setbridge.config import Settings

    monkeypatch.setenv("SETBRIDGE_MQTT__PORT", "18830")
    assert Settings().mqtt.port == 1883
    assert Settings(mqtt={"port": 1884}).mqtt.port == 1884
    assert load_settings(None).mqtt.port == 18830


def test_a_variable_inside_a_value_another_variable_sets_whole_is_refused(monkeypatch):
    monkeypatch.setenv("SETBRIDGE_MQTT__TLS", '"on"')
    monkeypatch.setenv("SETBRIDGE_MQTT__TLS__CA", "/etc/ssl/stage-ca.pem")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert info.value.lines == ["SETBRIDGE_MQTT__TLS__CA: tls is set as a whole by SETBRIDGE_MQTT__TLS; set it once"]


def test_a_table_value_that_is_not_json_says_how_to_write_it(monkeypatch):
    monkeypatch.setenv("SETBRIDGE_SPEECH__PHRASES__CUT", "cut it")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    (line,) = info.value.lines
    assert line.startswith("SETBRIDGE_SPEECH__PHRASES__CUT: speech.phrases.cut:") and "given as JSON" in line, line
    monkeypatch.setenv("SETBRIDGE_SPEECH__PHRASES__CUT", '["cut it"]')
    assert load_settings(None).speech.phrases["cut"] == ["cut it"]


def test_a_check_across_keys_does_not_print_the_configuration(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('[mqtt]\npassword = "hunter2-stage"\n[timecode]\nmode = "rec-run"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    (line,) = info.value.lines
    assert "needs [timecode] channel" in line and "hunter2" not in line, line
