"""Where the default embedder runs: what the installed packages and this machine offer (`probe`), and the pure
choice of a runtime from that and the settings (`choose_runtime`).

On a CUDA device, onnxruntime's CUDA execution provider is used when the installed onnxruntime has it (the
`onnxruntime-gpu` build), else sentence-transformers on torch's CUDA. Precision `auto` is fp16 on CUDA and fp32
on the CPU: fp16 vectors agree with fp32 ones to a cosine of 0.999998 or more and keep 99.9 % of each text's ten
nearest neighbours (measured on the CPU, see docs/gpu.md), so both share one embedder name and one store. Asking
for CUDA where it cannot run is a ConfigError naming what is missing; only device `auto` falls back to the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Literal, cast, get_args

from engram.config import check_device
from engram.errors import ConfigError

__all__ = ["CPU_BATCH", "CUDA_BATCH", "Offered", "Runtime", "choose_runtime", "cpu_runtime", "probe"]

Backend = Literal["auto", "onnx", "sentence-transformers"]  # auto: on the CPU only (see cpu_runtime)
Precision = Literal["fp32", "fp16"]
CPU_BATCH = 32  # texts a model call on the CPU: larger ones gain nothing there
CUDA_BATCH = 256  # on a GPU a call of 32 is too small to keep it busy
INSTALL_ORT_GPU = "pip install onnxruntime-gpu in place of onnxruntime"
INSTALL_TORCH_CUDA = "install a CUDA build of torch"


@dataclass(frozen=True)
class Offered:
    """What the installed packages and this machine offer the embedder."""

    onnxruntime: bool = False
    onnx_cuda: bool = False  # onnxruntime lists CUDAExecutionProvider (onnxruntime-gpu): says nothing of a device
    sentence_transformers: bool = False
    torch: str | None = None  # torch's version, None when it is not installed
    torch_cuda: bool = False  # torch is a build with CUDA
    cuda_devices: int | None = None  # CUDA devices a CUDA build of torch sees; None: not known (no such torch)


@dataclass(frozen=True)
class Runtime:
    """How the embedder runs. `strict`: False when device auto chose CUDA, which falls back to the CPU when
    onnxruntime cannot start on the device after all."""

    backend: Backend
    device: str  # cpu or cuda:N
    precision: Precision
    batch_size: int
    strict: bool = True


def cpu_runtime(backend: str, precision: str, batch_size: int | None) -> Runtime:
    """The runtime on the CPU (backend auto: onnx where onnxruntime is installed, else sentence-transformers)."""
    if backend not in get_args(Backend):
        raise ConfigError(f"embedder_backend must be auto, onnx or sentence-transformers; got {backend!r}")
    return Runtime(cast(Backend, backend), "cpu", _precision(precision, cuda=False), batch_size or CPU_BATCH)


def choose_runtime(device: str, backend: str, precision: str, batch_size: int | None, offered: Offered) -> Runtime:
    """The runtime for settings embedder_device, embedder_backend, embedder_precision and embedder_batch_size,
    given what is `offered`; ConfigError naming what is missing when the settings ask for what is not there."""
    device = check_device(device)
    if device == "cpu":
        return cpu_runtime(backend, precision, batch_size)
    if device == "auto":
        found = _cuda_backend(backend, 0, offered, strict=False)
        if found is None:  # what auto means: precision fp16 applies where a GPU is
            return cpu_runtime(backend, "auto" if precision == "fp16" else precision, batch_size)
        return Runtime(found, "cuda:0", _precision(precision, cuda=True), batch_size or CUDA_BATCH, strict=False)
    index = int(device.partition(":")[2] or 0)
    found = _cuda_backend(backend, index, offered, strict=True)
    assert found is not None  # strict: raised otherwise
    return Runtime(found, f"cuda:{index}", _precision(precision, cuda=True), batch_size or CUDA_BATCH)


def _precision(precision: str, *, cuda: bool) -> Precision:
    if precision not in ("auto", "fp32", "fp16"):
        raise ConfigError(f"embedder_precision must be auto, fp32 or fp16; got {precision!r}")
    if precision == "fp16" and not cuda:
        raise ConfigError("embedder_precision = fp16 needs a CUDA device (embedder_device = cuda or auto); "
                          "on the CPU the embedder runs in fp32")
    return "fp16" if precision == "fp16" or (precision == "auto" and cuda) else "fp32"


def _cuda_backend(backend: str, index: int, offered: Offered, *, strict: bool) -> Backend | None:
    """The backend that runs on CUDA device `index`; None (device auto) or a ConfigError (strict) when none can.
    With no CUDA build of torch to count devices, onnxruntime's provider is tried and checked as it loads."""
    device_there = offered.cuda_devices is None or offered.cuda_devices > index
    if backend in ("auto", "onnx") and offered.onnx_cuda and device_there:
        return "onnx"
    if backend in ("auto", "sentence-transformers") and offered.sentence_transformers and offered.torch_cuda \
            and device_there:
        return "sentence-transformers"
    if not strict:
        return None
    raise ConfigError(f"embedder_device = cuda:{index} cannot run here: {_missing(backend, index, offered)}")


def _missing(backend: str, index: int, offered: Offered) -> str:
    """Why no backend `backend` allows can run on CUDA device `index`, naming each missing part."""
    reasons = []
    if offered.cuda_devices is not None and offered.cuda_devices <= index:
        count = offered.cuda_devices
        reasons.append("no CUDA device" if count == 0 else f"torch sees {count} CUDA device(s): cuda:0 to "
                                                           f"cuda:{count - 1}")
    if backend in ("auto", "onnx") and not offered.onnx_cuda:
        what = "the installed onnxruntime has no CUDA execution provider" if offered.onnxruntime \
            else "onnxruntime is not installed"
        reasons.append(f"{what} ({INSTALL_ORT_GPU})")
    if backend in ("auto", "sentence-transformers"):
        if offered.torch is None:
            reasons.append(f"torch is not installed ({INSTALL_TORCH_CUDA})")
        elif not offered.torch_cuda:
            reasons.append(f"torch {offered.torch} is a build without CUDA ({INSTALL_TORCH_CUDA})")
        elif not offered.sentence_transformers:
            reasons.append("sentence-transformers is not installed")
    return "; ".join(reasons)


def probe(scratch: Path, backend: str) -> Offered:
    """What is installed, and the CUDA devices torch sees. torch is imported (a second or two) only when the
    backend may be sentence-transformers or onnxruntime has no CUDA provider; `scratch`: where torch may write."""
    from engram import offline_env

    try:
        providers = offline_env.import_onnxruntime().get_available_providers()
        onnxruntime = True
    except ImportError:
        providers, onnxruntime = [], False
    onnx_cuda = "CUDAExecutionProvider" in providers
    found = Offered(onnxruntime, onnx_cuda, find_spec("sentence_transformers") is not None)
    if onnx_cuda and backend != "sentence-transformers":
        return found
    with offline_env.torch_offline(scratch):
        try:
            import torch
        except ImportError:
            return found
    if torch.version.cuda is None:
        return replace(found, torch=str(torch.__version__))
    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return replace(found, torch=str(torch.__version__), torch_cuda=True, cuda_devices=int(devices))
