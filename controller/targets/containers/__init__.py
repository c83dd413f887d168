"""The container target: Docker and Podman containers."""
