"""`python -m engram.cli`: the same as the `engram` console script."""

from engram.cli._app import main

main()
