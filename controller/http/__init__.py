"""The HTTP surface of `trueup run`: server, webhooks, metrics."""
