"""Benchmarks of engram's memory: the LoCoMo harness (`locomo`), its metrics (`metrics`), the LLM answerer and
judge (`answer`), the report (`report`) and `engram eval` (`cli`). Nothing is imported here, so the CLI that
registers `engram eval` stays quick to start; import the submodules."""
