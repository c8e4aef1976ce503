"""Per-key request counts for the test backends, shared by their threads:
tests ask a backend how often a path was reached (retries, balancing)."""
import threading

_HITS = {}
_LOCK = threading.Lock()


def hit(key):
    """Counts one request for key; returns the count so far."""
    with _LOCK:
        _HITS[key] = _HITS.get(key, 0) + 1
        return _HITS[key]


def hits(key):
    """How many requests were counted for key."""
    with _LOCK:
        return _HITS.get(key, 0)
