"""Running DSPy programs against the configured LLM: configuration, accounting, and errors at the boundary.

DSPy (and LiteLLM under it) is imported on first use only: it costs ~0.5 s and engram must start without it.
Before the import engram.offline_env keeps LiteLLM from fetching anything and DSPy's cache in engram's data
directory; each LM is also built with cache=False.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from engram.config import Settings
from engram.errors import ConfigError, LLMError
from engram.offline_env import prepare_dspy

__all__ = ["LLM", "PLACEHOLDER_KEY", "Usage", "api_key_for", "import_dspy"]

log = logging.getLogger("engram.llm")
_import_lock = threading.Lock()

# Local servers DSPy (and LiteLLM) reach without a key: they supply their own placeholder when none is given.
KEYLESS_PROVIDERS = frozenset({"ollama", "ollama_chat", "hosted_vllm", "lm_studio"})
# What an OpenAI-compatible server that checks no key gets (vLLM's convention): DSPy refuses an openai/ model
# with no key at all, wherever its api_base points.
PLACEHOLDER_KEY = "EMPTY"
_OPENAI_HOST = "api.openai.com"
_KEY_SETTINGS = "llm_api_key (ENGRAM_LLM_API_KEY) or OPENAI_API_KEY"


def api_key_for(model: str, api_base: str | None, api_key: str | None) -> str | None:
    """The key to hand DSPy for this model and endpoint; None: pass none (DSPy finds the provider's own).

    The configured key when there is one; none for a keyless local server DSPy knows (ollama_chat/...); the
    placeholder for an OpenAI-compatible server other than OpenAI's; ConfigError when OpenAI's own API would
    be called without one. Other providers (anthropic/...) read their own variables inside DSPy.
    """
    if api_key:
        return api_key
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    if provider in KEYLESS_PROVIDERS or provider != "openai":
        return None
    if api_base and httpx.URL(api_base).host != _OPENAI_HOST:
        return PLACEHOLDER_KEY
    raise ConfigError(f"llm_model {model} calls {_OPENAI_HOST}, which needs an API key: set {_KEY_SETTINGS}; "
                      "for a server that needs none (Ollama, vLLM), set llm_api_base to its address")


def import_dspy(home: Path) -> Any:
    """Import dspy with engram's environment (engram.offline_env.prepare_dspy) and a quiet LiteLLM."""
    with _import_lock:
        prepare_dspy(home)
        try:
            import dspy
        except ImportError as exc:
            raise ConfigError("the LLM pipeline needs dspy (pip install dspy)") from exc
        logging.getLogger("LiteLLM").setLevel(logging.WARNING)
        return dspy


@dataclass
class Usage:
    """What the LLM cost for one operation, from the API's own usage numbers."""

    pipeline: str = "offline"
    model: str | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add_history(self, history: list[dict[str, Any]]) -> None:
        for entry in history:
            usage = entry.get("usage") or {}
            self.llm_calls += 1
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "model": self.model, "llm_calls": self.llm_calls,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


class LLM:
    """A configured DSPy LM. `run(program, usage, **inputs)` calls a DSPy module and accounts for it."""

    def __init__(self, settings: Settings) -> None:
        if not settings.llm_model:
            raise ConfigError("no LLM configured: set llm_model (ENGRAM_LLM_MODEL), e.g. openai/gpt-4o-mini")
        self.settings = settings
        self.model = settings.llm_model
        key = api_key_for(settings.llm_model, settings.llm_api_base, settings.llm_api_key)
        self._keyless = not settings.llm_api_key
        self.dspy = import_dspy(settings.home)
        self._lm = self.dspy.LM(
            settings.llm_model,
            api_base=settings.llm_api_base,
            **({} if key is None else {"api_key": key}),  # None would be refused as an empty credential
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            timeout=settings.llm_timeout,
            num_retries=settings.llm_retries,  # LiteLLM retries 429 / 5xx / timeouts with exponential backoff
            cache=False,
        )

    def run(self, program: Any, usage: Usage, **inputs: Any) -> Any:
        """Call `program(**inputs)` on a private copy of the LM, so concurrent calls count separately."""
        lm = self._lm.copy()
        usage.pipeline, usage.model = "llm", self.model
        errors = self.dspy.utils.exceptions
        try:
            with self.dspy.context(lm=lm):
                return program(**inputs)
        except errors.AdapterParseError as exc:
            raise LLMError(f"{self.model} answered in a form engram could not read, twice: {_short(exc)}") from exc
        except errors.LMConfigurationError as exc:  # a missing key or an impossible setting: nothing was sent
            raise ConfigError(f"{self.model} is not configured: {_short(exc)} (engram's settings: llm_model, "
                              f"llm_api_base, {_KEY_SETTINGS})") from exc
        except errors.LMError as exc:
            raise LLMError(f"{self.model} failed: {_short(exc)}{self._key_hint(exc)}") from exc
        finally:
            usage.add_history(lm.history)
            log.info("llm %s: %d call(s), %d prompt + %d completion tokens so far", self.model,
                     usage.llm_calls, usage.prompt_tokens, usage.completion_tokens)

    def _key_hint(self, exc: BaseException) -> str:
        if not isinstance(exc, self.dspy.utils.exceptions.LMAuthError):
            return ""
        return f" ({'no API key is configured' if self._keyless else 'the key was refused'}: set {_KEY_SETTINGS})"


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"
