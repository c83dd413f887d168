"""Desired state: manifests + revision + secrets + policy -> resolved apps."""
