"""Targets: one per kind of engine (containers on Docker/Podman, Swarm services)."""
