"""Settings layering (proxy/config.py): defaults < config file < environment < CLI overrides,
and clear errors for a bad file or an unknown key. In process: pydantic-settings reads the
environment, so each test sets its own with monkeypatch."""

import os

import pytest
from pydantic import ValidationError

from proxy.config import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("DEEPGUARD_")]:
        monkeypatch.delenv(name)


def test_defaults_without_file_or_environment():
    settings = load_settings()
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8000
    assert settings.server.workers is None  # one per core, decided at start


def test_file_then_environment_then_overrides(tmp_path, monkeypatch):
    config = tmp_path / "deepguard.yaml"
    config.write_text("server:\n  port: 9100\n  log_level: debug\nmodel: from-file\n")
    monkeypatch.setenv("DEEPGUARD_CONFIG", str(config))
    from_file = load_settings()
    assert (from_file.server.port, from_file.server.log_level, from_file.model) == (
        9100,
        "debug",
        "from-file",
    )

    monkeypatch.setenv("DEEPGUARD_SERVER_PORT", "9200")  # the environment beats the file
    from_env = load_settings()
    assert from_env.server.port == 9200 and from_env.server.log_level == "debug"

    overridden = load_settings(model="from-cli")  # what `deepguard serve` flags pass
    assert overridden.model == "from-cli" and overridden.server.port == 9200


def test_config_file_argument_wins_over_the_variable(tmp_path, monkeypatch):
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text('model = "a"\n')
    second.write_text('model = "b"\n')
    monkeypatch.setenv("DEEPGUARD_CONFIG", str(first))
    assert load_settings(str(second)).model == "b"
    # The argument is for that call only: the environment and the next call are untouched.
    assert os.environ["DEEPGUARD_CONFIG"] == str(first)
    assert load_settings().model == "a"


def test_bad_files_and_keys_say_what_is_wrong(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings(str(tmp_path / "missing.yaml"))
    ini = tmp_path / "deepguard.ini"
    ini.write_text("[server]\n")
    with pytest.raises(ValueError, match=r"\.yaml, \.yml or \.toml"):
        load_settings(str(ini))
    unknown = tmp_path / "typo.yaml"
    unknown.write_text("server:\n  prot: 9000\n")
    with pytest.raises(ValidationError, match="prot"):
        load_settings(str(unknown))
    with pytest.raises(ValidationError, match="port"):
        load_settings(server={"port": 70000})
