"""`python -m gateway.cli`: the same as the `trygg` command."""

from gateway.cli import main

main()
