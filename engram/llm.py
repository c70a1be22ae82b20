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

from engram.config import Settings
from engram.errors import ConfigError, LLMError
from engram.offline_env import prepare_dspy

__all__ = ["Usage", "LLM", "import_dspy"]

log = logging.getLogger("engram.llm")
_import_lock = threading.Lock()


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
        self.dspy = import_dspy(settings.home)
        self._lm = self.dspy.LM(
            settings.llm_model,
            api_base=settings.llm_api_base,
            api_key=settings.llm_api_key,
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
        except errors.LMError as exc:
            raise LLMError(f"{self.model} failed: {_short(exc)}") from exc
        finally:
            usage.add_history(lm.history)
            log.info("llm %s: %d call(s), %d prompt + %d completion tokens so far", self.model,
                     usage.llm_calls, usage.prompt_tokens, usage.completion_tokens)


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"
