"""`python -m trueup.cli`: the same as the `trueup` command."""

from trueup.cli import main

main()
