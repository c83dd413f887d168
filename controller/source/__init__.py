"""The git source: which commit to deploy, and the manifests and build contexts at it.

Public names for the rest of trueup (the reconciler, the loop and the CLI). Only this package
imports dulwich; everything it returns is one of the values below or a ``controller.errors``
exception.
"""

from controller.source.git import GitSource
from controller.source.location import RepoLocation, parse_location
from controller.source.model import BuildContext, ManifestFiles, Revision
from controller.source.watch import RevisionWatcher
from controller.source.worktree import read_worktree

__all__ = [
    "BuildContext",
    "GitSource",
    "ManifestFiles",
    "RepoLocation",
    "Revision",
    "RevisionWatcher",
    "parse_location",
    "read_worktree",
]
