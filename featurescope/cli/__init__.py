"""The ``featurescope`` command line: ``main`` parses, each command group's module turns arguments into library calls.

Layout: ``main`` (the parser, error handling), ``io`` (prompt files, hook lists), and one module per command group:
``models``, ``capture``, ``persona``, ``sae``, ``decompose``, ``demo``, ``posttrain``, ``stages``, ``axis``, ``report``.
"""

from .main import GROUPS, build_parser, main

__all__ = ["GROUPS", "build_parser", "main"]
