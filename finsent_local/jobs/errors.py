"""What stops a job (a file job, a Ray job): one error type, its message one line for the user."""

from __future__ import annotations


class JobError(Exception):
    """The job cannot go on; the message says why in one line. Kinds: TableError (the file cannot be
    read or written as asked), JobLocked, RayNotOnLoopback, RayJobFailed."""
