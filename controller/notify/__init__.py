"""Notifications and commit statuses: what a pass tells people, and where.

``events`` derives events from a pass (pure), ``dedup`` decides which are news (pure; the
state is kept in the SQLite history), ``message`` renders one message per pass and destination
(pure), ``destinations`` sends it (a signed CloudEvents webhook, Apprise URLs),
``commit_status`` posts to GitHub, GitLab and Gitea, ``delivery`` classifies answers and
retries (429, Retry-After), ``sender`` runs a bounded queue and a background task per
destination so a slow one never holds up a pass, ``notifier`` is the controller loop's hook
that ties them together, and ``setup`` builds them from the ``notifications:`` settings.
"""
