"""HTTPS and WSS: the listener's TLS context, loaded in one place.

With ``BRIDGE_TLS_CERT_FILE`` and ``BRIDGE_TLS_KEY_FILE`` set the bridge serves HTTPS (and
the stream as WSS). :func:`load_certificate` is the one place that reads the files: a
reload (on SIGHUP, say) calls it again on the same context, and new connections get the
new certificate while open ones keep theirs.
"""

from __future__ import annotations

import ssl

from bridge.config import ConfigError
from bridge.settings import Settings


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when no certificate is configured.

    Raises ConfigError when the files cannot be read or do not make a certificate and key.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_certificate(context, settings)
    return context


def load_certificate(context: ssl.SSLContext, settings: Settings) -> None:
    """(Re)load the certificate chain and key of the settings into ``context``."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    assert cert is not None
    assert key is not None
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            "BRIDGE_TLS_CERT_FILE", [f"{cert} with key {key} cannot be loaded: {reason}"]
        ) from None
