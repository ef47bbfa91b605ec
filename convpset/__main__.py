"""``python -m convpset ...`` is the ``pset`` command."""

from convpset.cli import pset_main

pset_main()
