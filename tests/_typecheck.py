"""The run-time checker the test suite applies to every featurescope function (see conftest.py): beartype with the
PEP 484 numeric tower (an int is accepted where a float is annotated, as static checkers do)."""

from beartype import BeartypeConf, beartype

checker = beartype(conf=BeartypeConf(is_pep484_tower=True))
