"""Manifest v1: models (``models``), YAML with positions (``yamlmarks``), and the ``loader``."""

from controller.manifests.loader import LoadedApp, LoadResult, Problem, load_files
from controller.manifests.models import API_VERSION, App, Spec

__all__ = ["API_VERSION", "App", "LoadResult", "LoadedApp", "Problem", "Spec", "load_files"]
