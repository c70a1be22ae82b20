"""Tests never read the developer's settings: conftest's autouse fixture clears ENGRAM_* and OPENAI_*."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Each fails when the variables below reach it: keyword-only fusion ranks differently, and an llm_model sends
# the offline pipeline's test to an LLM endpoint that does not exist.
LEAKY = ["tests/test_memory.py::test_search_ranks_relevant_first_with_scores_in_unit_range",
         "tests/test_pipeline_offline.py::test_design_example_offline"]


def test_a_developers_settings_do_not_reach_the_tests(tmp_path: Path) -> None:
    env = {**os.environ, "ENGRAM_SEARCH_FUSION": "keyword", "ENGRAM_LLM_MODEL": "openai/x",
           "OPENAI_API_KEY": "sk-developer", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path}/t",
                          *LEAKY], check=False, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout
