"""Compose files as a source: a pure normaliser from a ``compose.yaml`` (with its committed
``.env`` and the host's variables) to the same ``App`` models a trueup manifest validates to,
every problem located in the compose file. Entry point: ``compose.project.load_project``."""
