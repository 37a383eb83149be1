"""Preflight for object-store locations (``output: s3://…``, ``input.path: s3://…``).

Tried, not guessed: the output check writes and deletes one probe object under the prefix, so a
missing bucket, a wrong endpoint, bad credentials or no write permission stop the build with exit 2
and one line naming the URL and the cause, before any work and before the lock. Credentials are
never part of the message (only the URL and the error's code).
"""

from __future__ import annotations

import os

from regionset.common.storage import is_remote
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import STATE_DIR
from regionset.pipelines.preflight.checks import Check, fail, ok
from regionset.pipelines.preflight.exclusive import check_exclusive_create

_CAUSES = (  # (substring of the client's error, the cause in words)
    ("NoSuchBucket", "the bucket does not exist"),
    ("InvalidAccessKeyId", "bad credentials (the access key is not known)"),
    ("Access Key Id you provided does not exist", "bad credentials (the access key is not known)"),
    ("SignatureDoesNotMatch", "bad credentials (the secret key does not match)"),
    ("signature we calculated does not match", "bad credentials (the secret key does not match)"),
    ("InvalidToken", "bad credentials (the session token is invalid)"),
    ("ExpiredToken", "bad credentials (the session token expired)"),
    ("AccessDenied", "no permission to write there"),
    ("Could not connect", "cannot reach the endpoint (check AWS_ENDPOINT_URL)"),
    ("Connect timeout", "cannot reach the endpoint (check AWS_ENDPOINT_URL)"),
    ("Unable to locate credentials", "no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"),
)


def storage_cause(err: BaseException) -> str:
    """The cause of a storage error in a few words (the error's code, never its request details).

    Args:
        err: what the client raised.
    """
    text = f"{type(err).__name__}: {err}"
    for needle, cause in _CAUSES:
        if needle.lower() in text.lower():
            return cause
    if isinstance(err, FileNotFoundError):
        return "the bucket does not exist"
    if isinstance(err, PermissionError):
        return "permission denied (credentials or policy)"
    return type(err).__name__ + ": " + " ".join(str(err).split())[:160]


def check_remote_output(cfg: BuildConfig) -> Check:
    """Write and delete one probe object under the output prefix.

    Args:
        cfg: the resolved build config (``output`` is a URL).
    """
    out = Output(cfg.output)
    probe = out / STATE_DIR / f".preflight-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        import fsspec  # noqa: F401 (the protocol's client, e.g. s3fs, is imported by the filesystem)

        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)
    except ImportError as err:
        return fail("output writable", "output", f"output={cfg.output}: no client for {out.protocol}:// "
                    f"({err.name} is not installed); pip install 'regionset[cloud]'")
    except Exception as err:  # the client's errors vary by backend: name the cause, not the trace
        cause = storage_cause(err)
        if isinstance(err, PermissionError) and _can_list(out):
            cause = "these credentials can read the bucket but not write to it (writing is denied by policy)"
        return fail("output writable", "output", f"output={cfg.output}: {cause}")
    return ok("output writable", "output", f"{out} (object store; probe written and deleted)")


def _can_list(out) -> bool:
    """Whether the prefix can be listed (a refused write with a permitted read is a policy that
    denies writing, not bad credentials)."""
    try:
        out.versions()
    except Exception:  # noqa: BLE001 - any failure: the read is not permitted either
        return False
    return True


def storage_checks(cfg: BuildConfig) -> list[Check]:
    """The object-store checks of ``cfg`` (none for a local output).

    Args:
        cfg: the resolved build config.
    """
    if not is_remote(cfg.output):
        return []
    written = check_remote_output(cfg)
    return [written] if written.status == "fail" else [written, check_exclusive_create(cfg)]
