"""Memory mode's second half: the LLM answers each question from the retrieved memories, an LLM judge grades it.

Both are DSPy Signatures run through `engram.llm.LLM` (configured from Settings: llm_model, llm_api_base, ...),
so they speak to any LiteLLM model string or OpenAI-compatible endpoint. Adversarial questions (category 5)
are not answered: their gold answer is "not in the conversation", which judges and F1 cannot score fairly.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engram.eval.metrics import bleu1, token_f1
from engram.llm import LLM, Usage

if TYPE_CHECKING:
    from engram.config import Settings
    from engram.eval.locomo import Progress, QuestionResult

__all__ = ["Answerer", "signatures"]


def signatures(dspy: Any) -> tuple[type, type]:
    """The answer and judge Signatures (built on first use: dspy is imported lazily)."""

    class AnswerFromMemories(dspy.Signature):
        """Answer a question about the people in a long conversation using only the memories given.
        Each memory starts with the date it was said: turn relative times ("yesterday", "last week") into
        dates from it. Answer in as few words as possible. If the memories do not say, answer "not mentioned"."""

        memories: str = dspy.InputField(desc="one memory per line: [YYYY-MM-DD] what was said")
        question: str = dspy.InputField()
        answer: str = dspy.OutputField(desc="a short answer: a name, a date, a few words")

    class JudgeAnswer(dspy.Signature):
        """Grade a generated answer against the gold answer. Be generous: CORRECT when it names the same thing,
        even in other words, with extra detail, or in another date format ("May 7th" for "7 May 2023"); for
        a time, CORRECT when it refers to the same day, week, month or year as the gold answer. Otherwise WRONG."""

        question: str = dspy.InputField()
        gold_answer: str = dspy.InputField()
        generated_answer: str = dspy.InputField()
        label: str = dspy.OutputField(desc="CORRECT or WRONG")

    return AnswerFromMemories, JudgeAnswer


class Answerer:
    """Answers and grades the questions of one conversation; returns what each stage spent."""

    def __init__(self, settings: Settings, *, top_k: int = 10, judge_settings: Settings | None = None) -> None:
        self.top_k = top_k
        self.llm = LLM(settings)
        self.judge_llm = self.llm if judge_settings is None else LLM(judge_settings)
        answer, judge = signatures(self.llm.dspy)
        self._answer = self.llm.dspy.Predict(answer)
        self._judge = self.judge_llm.dspy.Predict(judge)

    def __call__(self, results: list[QuestionResult], progress: Progress | None = None) -> dict[str, dict[str, float]]:
        answering, judging = Usage(), Usage()
        spent = {"answer": 0.0, "judge": 0.0}
        for result in results:
            question = result.question
            if question.category == 5 or question.answer is None:
                continue
            start = time.perf_counter()
            memories = "\n".join(result.memories[: self.top_k]) or "(no memories)"
            predicted = self.llm.run(self._answer, answering, memories=memories, question=question.text)
            result.prediction = " ".join(str(predicted.answer).split())
            middle = time.perf_counter()
            verdict = self.judge_llm.run(self._judge, judging, question=question.text, gold_answer=question.answer,
                                         generated_answer=result.prediction)
            spent["answer"] += middle - start
            spent["judge"] += time.perf_counter() - middle
            result.judgement = str(verdict.label).strip().upper().startswith("CORRECT")
            result.f1 = token_f1(result.prediction, question.answer)
            result.bleu1 = bleu1(result.prediction, question.answer)
            if progress is not None:
                progress.advance()
        return {name: _usage(usage, spent[name]) for name, usage in (("answer", answering), ("judge", judging))}


def _usage(usage: Usage, seconds: float) -> dict[str, float]:
    return {"calls": usage.llm_calls, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "seconds": round(seconds, 3)}
