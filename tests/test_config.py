"""Settings: defaults < TOML file < ENGRAM_* environment < keyword arguments; bad values are ConfigError."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engram import ConfigError, Settings
from engram.components import embedder_from


def test_defaults_work_offline_without_any_configuration(tmp_path: Path) -> None:
    settings = Settings.load(env={"HOME": str(tmp_path)})
    assert settings.store == "sqlite" and settings.embedder == "local"
    assert settings.database == settings.home / "engram.db"


def test_precedence_file_then_env_then_arguments(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('search_limit = 3\nrrf_k = 10\n[embedder]\nmodel = "m-file"\n')
    env = {"ENGRAM_HOME": str(tmp_path), "ENGRAM_RRF_K": "20"}
    settings = Settings.load(env=env, search_pool=7)
    assert (settings.search_limit, settings.rrf_k, settings.search_pool) == (3, 20, 7)
    assert settings.embedder_model == "m-file" and settings.home == tmp_path
    assert Settings.load(env=env, rrf_k=30).rrf_k == 30


def test_explicit_config_file_and_openai_key_fallback(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[engram]\nembedder = "openai"\nembedder_dimensions = 256\n')
    settings = Settings.load(env={"ENGRAM_CONFIG": str(path), "OPENAI_API_KEY": "sk-test",
                                  "ENGRAM_HOME": str(tmp_path)})
    assert (settings.embedder, settings.embedder_dimensions, settings.embedder_api_key) == ("openai", 256, "sk-test")
    embedder = embedder_from(settings)
    assert embedder.name == "openai:text-embedding-3-small:256" and embedder.dimension == 256


@pytest.mark.parametrize(("env", "kwargs", "message"), [
    ({"ENGRAM_SEARCH_LIMIT": "many"}, {}, "search_limit"),
    ({"ENGRAM_SEARCH_LIMIT": "-1"}, {}, "positive"),
    ({}, {"colour": "red"}, "unknown setting"),
    ({"ENGRAM_CONFIG": "/nonexistent/engram.toml"}, {}, "does not exist"),
])
def test_bad_settings_are_config_errors(tmp_path: Path, env: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path), **env}, **kwargs)


def test_bad_toml_and_unknown_names_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path)})
    (tmp_path / "config.toml").write_text('flavour = "mint"\n')
    with pytest.raises(ConfigError, match="flavour"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path)})


CHOICES = {"store": "sqlite, qdrant, files", "embedder": "local, openai",
           "embedder_backend": "auto, onnx, sentence-transformers", "search_fusion": "score, rrf, dense, keyword",
           "reconcile_mode": "predict, react", "embedder_precision": "auto, fp32, fp16"}


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_enumerated_settings_are_checked_choices_wherever_they_come_from(tmp_path: Path, name: str) -> None:
    message = f"{name} .*must be one of {CHOICES[name]}; got 'typo'"
    with pytest.raises(ConfigError, match=message):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path), f"ENGRAM_{name.upper()}": "typo"})
    with pytest.raises(ConfigError, match=message):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path)}, **{name: "typo"})
    (tmp_path / "config.toml").write_text(f'{name} = "typo"\n')
    with pytest.raises(ConfigError, match=message):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path)})
    typo: dict[str, Any] = {name: "typo"}
    with pytest.raises(ConfigError, match=message):  # built directly, or changed with dataclasses.replace
        Settings(**typo)
    with pytest.raises(ConfigError, match=message):
        replace(Settings(), **typo)


def test_a_typo_in_reconcile_mode_no_longer_runs_predict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reconcile_mode"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_RECONCILE_MODE": "reactt"})
    first = CHOICES["reconcile_mode"].split(", ")[-1]
    env = {"ENGRAM_HOME": str(tmp_path), "ENGRAM_RECONCILE_MODE": f" {first.upper()} "}
    assert Settings.load(env=env).reconcile_mode == first


def test_search_behaviour_comes_from_settings(tmp_path: Path) -> None:
    from engram.retrieval import search_config

    settings = Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_SEARCH_CONTEXT": "0",
                                  "ENGRAM_SEARCH_FUSION": "rrf", "ENGRAM_SEARCH_TIME_WEIGHT": "0"})
    config = search_config(settings)
    assert (config.fusion, config.context, config.time_weight) == ("rrf", (), 0.0)
    with pytest.raises(ConfigError, match="search_fusion"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path)}, search_fusion="magic")


def test_files_git_is_a_boolean_setting(tmp_path: Path) -> None:
    assert Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_FILES_GIT": "true"}).files_git is True
    assert Settings.load(env={"ENGRAM_HOME": str(tmp_path)}, files_git=False).files_git is False
    with pytest.raises(ConfigError, match="files_git must be true or false"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_FILES_GIT": "maybe"})
