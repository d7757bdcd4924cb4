"""Run keys that stay the same while the same items wait, and change when they need another run."""

import hashlib


def run_key(prefix: str, fingerprints: list[str], lease_minutes: int, now: float) -> str:
    """Build a run key from the items' fingerprints (id, attempt count, last update) and the lease period.

    A claim or an outcome changes a fingerprint, so a retry gets a new key, and so does a row the
    application rewrote. The lease period is in the key because Dagster never relaunches a key it has seen,
    and a run that died before it claimed anything must not block its items for ever.
    """
    lease_period = int(now // (lease_minutes * 60))
    digest = hashlib.sha256(f"{','.join(sorted(fingerprints))}|{lease_period}".encode()).hexdigest()[:24]
    return f"{prefix}-{digest}"
