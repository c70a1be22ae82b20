"""Concurrent embed() calls served together: what a server needs when many requests each embed one query.

One model call on 32 short texts costs far less than 32 calls on one text each. Callers queue their texts;
one background thread takes everything queued, embeds it in one call and hands each caller its rows. While it
works, new callers queue up and form the next call, so under load the calls grow by themselves, and a lone
caller waits for nothing but its own texts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engram.embed.base import Embedder
from engram.errors import EmbedderError

__all__ = ["CoalescingEmbedder"]


@dataclass
class _Job:
    texts: Sequence[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: Exception | None = None


class CoalescingEmbedder(Embedder):
    """Wraps an embedder (same name and dimension: the stores see no difference); thread-safe."""

    def __init__(self, inner: Embedder, *, max_texts: int = 256) -> None:
        self.inner = inner
        self.name, self.dimension, self.batch_size = inner.name, inner.dimension, inner.batch_size
        self.max_texts = max_texts
        self._queue: list[_Job] = []
        self._ready = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts or len(texts) >= self.max_texts:
            return self.inner.embed(texts)  # large calls gain nothing from company
        job = _Job(texts)
        with self._ready:
            if self._closed:
                raise EmbedderError(f"{self.name}: the embedder was closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="engram-embed", daemon=True)
                self._worker.start()
            self._queue.append(job)
            self._ready.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        if self._worker is not None:
            self._worker.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                jobs: list[_Job] = []
                size = 0
                while self._queue and (not jobs or size + len(self._queue[0].texts) <= self.max_texts):
                    job = self._queue.pop(0)
                    jobs.append(job)
                    size += len(job.texts)
            self._serve(jobs)

    def _serve(self, jobs: list[_Job]) -> None:
        try:
            vectors = self.inner.embed([text for job in jobs for text in job.texts])
        except Exception as exc:  # noqa: BLE001 - handed to the callers, whatever it is
            if len(jobs) > 1:  # one caller's texts may have failed the call: each alone, so only its caller fails
                for job in jobs:
                    self._serve([job])
                return
            jobs[0].error = exc
            jobs[0].done.set()
            return
        start = 0
        for job in jobs:
            job.result = vectors[start : start + len(job.texts)]
            start += len(job.texts)
            job.done.set()
