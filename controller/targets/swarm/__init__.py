"""The Swarm target: services on a swarm manager."""
