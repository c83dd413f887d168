"""Notifications and commit statuses: what a pass tells people, and where.

``events`` derives events from a pass (pure), ``dedup`` decides which are news (state kept in
the SQLite history), ``message`` renders one message per pass and destination (pure),
``destinations`` sends it (a signed JSON webhook, Apprise URLs), ``commit_status`` posts to
GitHub, GitLab and Gitea, and ``sender`` runs them in a background task fed by a bounded
queue, with a rate limit and retries, so a slow destination never holds up a pass.
"""
