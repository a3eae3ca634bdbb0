"""`python -m finsent_local.cli ...`: the same as the `finsent` command."""

from .main import main

main()
