"""``python -m lifelong``: the same as the ``lifelong`` script."""

from lifelong.cli import main

main()
