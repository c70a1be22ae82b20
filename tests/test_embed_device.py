"""Where the local embedder runs: settings embedder_device / embedder_precision / embedder_batch_size, the pure
choice of a runtime from what is installed, the probe of this machine, and the fp16 models (run on the CPU here:
no test needs a GPU)."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from engram import ConfigError, Memory, Settings
from engram.embed.device import CPU_BATCH, CUDA_BATCH, Offered, Runtime, choose_runtime, probe
from engram.embed.local import MiniLMEmbedder, ensure_fp16, ensure_onnx, load_onnx, load_reference, packaged_model_dir

ORT_GPU = Offered(onnxruntime=True, onnx_cuda=True, sentence_transformers=True)  # torch not asked: devices unknown
ORT_CPU = Offered(onnxruntime=True, sentence_transformers=True, torch="2.13.0+cpu")
TORCH_GPU = Offered(onnxruntime=True, sentence_transformers=True, torch="2.13.0", torch_cuda=True, cuda_devices=2)
NO_DEVICE = Offered(onnxruntime=True, onnx_cuda=True, sentence_transformers=True, torch="2.13.0", torch_cuda=True,
                    cuda_devices=0)
TEXTS = ["I like coffee", "User moved to Lyon in March 2024 and works at Acme.", "x",
         "Ünïcödé, 日本語 and emoji 🙂"] + [f"sentence number {i} about topic {i % 7}" for i in range(30)]


@pytest.mark.parametrize(("device", "backend", "precision", "batch", "offered", "expected"), [
    ("cpu", "auto", "auto", None, Offered(), Runtime("auto", "cpu", "fp32", CPU_BATCH)),
    ("cpu", "sentence-transformers", "fp32", 64, Offered(), Runtime("sentence-transformers", "cpu", "fp32", 64)),
    ("cuda", "auto", "auto", None, ORT_GPU, Runtime("onnx", "cuda:0", "fp16", CUDA_BATCH)),
    ("cuda:1", "auto", "fp32", 512, TORCH_GPU, Runtime("sentence-transformers", "cuda:1", "fp32", 512)),
    ("cuda", "sentence-transformers", "auto", None, TORCH_GPU, Runtime("sentence-transformers", "cuda:0", "fp16",
                                                                       CUDA_BATCH)),
    ("auto", "auto", "auto", None, ORT_CPU, Runtime("auto", "cpu", "fp32", CPU_BATCH)),
    ("auto", "auto", "fp16", None, ORT_CPU, Runtime("auto", "cpu", "fp32", CPU_BATCH)),  # fp16 where a GPU is
    ("auto", "auto", "auto", None, NO_DEVICE, Runtime("auto", "cpu", "fp32", CPU_BATCH)),
    ("auto", "auto", "auto", None, TORCH_GPU, Runtime("sentence-transformers", "cuda:0", "fp16", CUDA_BATCH,
                                                      strict=False)),
    ("auto", "onnx", "auto", None, ORT_GPU, Runtime("onnx", "cuda:0", "fp16", CUDA_BATCH, strict=False)),
])
def test_the_runtime_follows_the_settings_and_what_is_installed(device: str, backend: str, precision: str,
                                                               batch: int | None, offered: Offered,
                                                               expected: Runtime) -> None:
    assert choose_runtime(device, backend, precision, batch, offered) == expected


@pytest.mark.parametrize(("device", "backend", "offered", "missing"), [
    ("cuda", "auto", ORT_CPU, ["onnxruntime has no CUDA execution provider", "onnxruntime-gpu",
                               "torch 2.13.0+cpu is a build without CUDA"]),
    ("cuda", "onnx", TORCH_GPU, ["onnxruntime has no CUDA execution provider"]),
    ("cuda", "auto", NO_DEVICE, ["no CUDA device"]),
    ("cuda:2", "auto", TORCH_GPU, ["torch sees 2 CUDA device(s): cuda:0 to cuda:1"]),
    ("cuda", "auto", Offered(), ["onnxruntime is not installed", "torch is not installed"]),
    ("cuda", "sentence-transformers", Offered(torch="2.13.0", torch_cuda=True, cuda_devices=1),
     ["sentence-transformers is not installed"]),
])
def test_asking_for_cuda_where_it_cannot_run_names_what_is_missing(device: str, backend: str, offered: Offered,
                                                                  missing: list[str]) -> None:
    with pytest.raises(ConfigError, match="cannot run here") as raised:
        choose_runtime(device, backend, "auto", None, offered)
    for part in missing:
        assert part in str(raised.value)
    if backend == "onnx":  # the backend asked for is the only one named
        assert "torch" not in str(raised.value)


def test_fp16_on_the_cpu_is_refused_unless_the_device_is_auto() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        choose_runtime("cpu", "auto", "fp16", None, ORT_CPU)
    assert choose_runtime("auto", "auto", "fp16", None, ORT_CPU).precision == "fp32"


@pytest.mark.parametrize(("given", "normal"), [("cpu", "cpu"), (" CUDA ", "cuda"), ("cuda:3", "cuda:3"),
                                              ("Auto", "auto")])
def test_the_device_setting_is_normalised(tmp_path: Path, given: str, normal: str) -> None:
    assert Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_EMBEDDER_DEVICE": given}).embedder_device == normal
    assert Settings().embedder_device == "cpu" and Settings().embedder_precision == "auto"


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cuda0", "mps", ""])
def test_a_bad_device_is_a_config_error_wherever_it_comes_from(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="embedder_device"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_EMBEDDER_DEVICE": bad})
    with pytest.raises(ConfigError, match="embedder_device"):
        Settings(embedder_device=bad)
    (tmp_path / "config.toml").write_text(f'[embedder]\ndevice = "{bad}"\n')
    with pytest.raises(ConfigError, match="embedder_device"):
        Settings.load(env={"ENGRAM_HOME": str(tmp_path)})


def test_the_batch_size_setting_is_a_positive_integer(tmp_path: Path) -> None:
    assert Settings.load(env={"ENGRAM_EMBEDDER_BATCH_SIZE": "512"}).embedder_batch_size == 512
    for bad in ("0", "-4", "many"):
        with pytest.raises(ConfigError, match="embedder_batch_size"):
            Settings.load(env={"ENGRAM_HOME": str(tmp_path), "ENGRAM_EMBEDDER_BATCH_SIZE": bad})


def test_the_probe_reports_what_is_installed(tmp_path: Path) -> None:
    import onnxruntime
    import torch

    offered = probe(tmp_path, "sentence-transformers")
    assert offered.onnxruntime and offered.sentence_transformers
    assert offered.onnx_cuda == ("CUDAExecutionProvider" in onnxruntime.get_available_providers())
    assert offered.torch == str(torch.__version__) and offered.torch_cuda == (torch.version.cuda is not None)
    if offered.torch_cuda:
        assert offered.cuda_devices == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    else:
        assert offered.cuda_devices is None


def _cuda_runs_here(tmp_path: Path) -> bool:
    offered = probe(tmp_path, "auto")
    return choose_runtime("auto", "auto", "auto", None, offered).device != "cpu"


def test_memory_refuses_cuda_at_open_where_there_is_none(home: Path, tmp_path: Path) -> None:
    if _cuda_runs_here(tmp_path):
        pytest.skip("this machine can run the embedder on CUDA")
    with pytest.raises(ConfigError, match="embedder_device = cuda:0 cannot run here"):
        Memory(home=home, embedder_device="cuda")
    assert not list(home.glob("*.db")), "nothing is written when the embedder cannot open"


def test_device_auto_runs_where_it_can_and_embeds_as_the_default(home: Path, embedder: MiniLMEmbedder,
                                                                 tmp_path: Path) -> None:
    auto = MiniLMEmbedder(home / "models", device="auto")
    if not _cuda_runs_here(tmp_path):
        assert auto.runtime == Runtime("auto", "cpu", "fp32", CPU_BATCH)
    cosines = (auto.embed(TEXTS) * embedder.embed(TEXTS)).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines.min()


def test_the_fp16_onnx_model_is_made_once_privately_and_agrees_with_fp32(models_dir: Path) -> None:
    fp32, _ = load_onnx(Runtime("onnx", "cpu", "fp32", 32), models_dir)
    fp16, started = load_onnx(Runtime("onnx", "cpu", "fp16", 32), models_dir)  # what a GPU runs, on the CPU here
    assert started
    made = ensure_fp16(ensure_onnx(packaged_model_dir(), models_dir))
    assert made.name == "model-fp16.onnx" and stat.S_IMODE(made.stat().st_mode) == 0o600
    mtime = made.stat().st_mtime_ns
    assert ensure_fp16(ensure_onnx(packaged_model_dir(), models_dir)).stat().st_mtime_ns == mtime
    a, b = _unit(fp32(TEXTS)), _unit(fp16(TEXTS))
    assert (a * b).sum(axis=1).min() >= 0.9999


def test_sentence_transformers_in_fp16_agrees_with_fp32(models_dir: Path) -> None:
    fp32 = load_reference(Runtime("sentence-transformers", "cpu", "fp32", 32), models_dir)
    fp16 = load_reference(Runtime("sentence-transformers", "cpu", "fp16", 32), models_dir)
    a, b = _unit(fp32(TEXTS)), _unit(fp16(TEXTS))
    assert (a * b).sum(axis=1).min() >= 0.9999


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
