"""trueup: a GitOps reconciliation controller for container hosts.

Manifests committed to git are the desired state; the container engine holds the observed
state; trueup plans the difference and applies it until the two match.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
