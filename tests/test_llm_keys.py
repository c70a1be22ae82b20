"""Endpoints that need no key (Ollama, a local vLLM) work without one; a key that is really missing is named.

conftest clears OPENAI_API_KEY, so "no key configured" here means none at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engram import ConfigError, EmbedderError, LLMError, Memory, Settings
from engram.cli import app
from engram.embed.openai import OpenAIEmbedder
from engram.llm import LLM, PLACEHOLDER_KEY, api_key_for
from engram.testing import FakeOpenAI, Reply, dspy_reply

TEA = dspy_reply(facts=[{"text": "User likes tea", "category": "preferences", "about": "user", "happened_at": None}])


def infer_tea(home: Path, embedder, fake: FakeOpenAI, model: str) -> list[tuple[str, str]]:
    fake.script_chat(TEA)
    with Memory(home=home, embedder=embedder, llm_model=model, llm_api_base=fake.base_url, llm_retries=0) as m:
        out = m.add("I like tea", user_id="u")
    return [(r["event"], r["memory"]) for r in out["results"]]


def test_an_openai_compatible_endpoint_needs_no_key(home, embedder, fake_openai: FakeOpenAI) -> None:
    assert infer_tea(home, embedder, fake_openai, "openai/local-model") == [("ADD", "User likes tea")]
    assert fake_openai.count("/chat/completions") == 1


def test_ollama_needs_no_key(home, embedder, fake_openai: FakeOpenAI) -> None:
    try:
        events = infer_tea(home, embedder, fake_openai, "ollama_chat/llama3.1")
    except LLMError:
        paths = [r.path for r in fake_openai.requests]
        if paths and not any(p.endswith("/chat/completions") for p in paths):
            pytest.skip(f"this DSPy sends ollama_chat to Ollama's own API ({paths[0]}), "
                        "which FakeOpenAI does not speak")
        raise
    assert events == [("ADD", "User likes tea")]


def test_a_missing_openai_key_names_the_settings(home, embedder, fake_openai: FakeOpenAI) -> None:
    for base in (None, "https://api.openai.com/v1"):
        settings = Settings.load(home=home, llm_model="openai/gpt-4o-mini", llm_api_base=base)
        with pytest.raises(ConfigError, match=r"llm_api_key.*OPENAI_API_KEY"):
            LLM(settings)
        with Memory(settings, embedder=embedder) as m, pytest.raises(ConfigError, match="llm_api_key"):
            m.add("I like tea", user_id="u")
    with pytest.raises(ConfigError, match="llm_api_key"):
        api_key_for("gpt-4o-mini", None, None)  # a model without a provider prefix is OpenAI's too
    assert api_key_for("openai/gpt-4o-mini", None, "sk-x") == "sk-x"
    assert api_key_for("openai/local", "http://127.0.0.1:8000/v1", None) == PLACEHOLDER_KEY
    assert api_key_for("ollama_chat/llama3.1", None, None) is None  # DSPy's own placeholder for a local server
    assert api_key_for("anthropic/claude", None, None) is None  # DSPy reads the provider's own variable


def test_a_refused_key_is_an_llm_error_that_names_the_setting(home, embedder, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(Reply(status=401, content="no key, no entry"))
    with Memory(home=home, embedder=embedder, llm_model="openai/m", llm_api_base=fake_openai.base_url,
                llm_retries=0) as m, pytest.raises(LLMError, match="llm_api_key"):
        m.add("I like tea", user_id="u")


def test_engram_profile_with_a_keyless_llm(home, fake_openai: FakeOpenAI) -> None:
    env = {"ENGRAM_HOME": str(home), "ENGRAM_LLM_MODEL": "openai/local-model",
           "ENGRAM_LLM_API_BASE": fake_openai.base_url}
    runner = CliRunner(env=env)
    assert runner.invoke(app, ["add", "I live in Lyon", "-u", "bob"]).exit_code == 0
    fake_openai.script_chat(dspy_reply(profile="- User lives in Lyon"))
    result = runner.invoke(app, ["profile", "--user", "bob"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "User lives in Lyon" in result.stdout


def test_the_openai_embedder_needs_no_key_except_at_openai(fake_openai: FakeOpenAI) -> None:
    with OpenAIEmbedder("emb", base_url=fake_openai.base_url) as keyless:
        assert keyless.embed(["x"]).shape == (1, 64)
    assert "authorization" not in fake_openai.requests[-1].headers
    at_openai: tuple[dict[str, Any], ...] = ({}, {"embedder_base_url": "https://api.openai.com/v1/"})
    for settings in at_openai:
        with pytest.raises(ConfigError, match=r"embedder_api_key.*OPENAI_API_KEY"):
            Memory(Settings.load(embedder="openai", **settings))
    with pytest.raises(ConfigError, match="api_key"):
        OpenAIEmbedder("text-embedding-3-small")


def test_an_embedder_refused_without_a_key_says_which_setting(fake_openai: FakeOpenAI) -> None:
    fake_openai.script_embeddings(Reply(status=401, content="a key is needed"))
    with OpenAIEmbedder("emb", base_url=fake_openai.base_url, max_retries=0) as keyless, \
            pytest.raises(EmbedderError, match=r"a key is needed.*no API key was sent.*embedder_api_key"):
        keyless.embed(["x"])

