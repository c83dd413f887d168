"""Manifest v1: models (``models``), YAML with positions (``yamlmarks``), the ``loader``, and
the located ``problems`` it reports.

Import from the submodules: this package's own import loads nothing, so code that only needs
``problems`` never pays for pydantic and the models.
"""
