"""How the peer port is secured: mutual TLS with the identity's certificate (``GOQ_TLS_DIR``), or plaintext.

``GOQ_TLS_DIR`` is a mounted Secret in the ``kubernetes.io/tls`` layout plus the CA bundle: ``tls.crt``,
``tls.key``, ``ca.crt``. The peer server asks every caller for a certificate signed by that CA; a sender
checks the receiver's certificate against the same CA and against the destination's Service name
(``goq-<id>.<namespace>.svc``; gRPC verifies DNS SANs, so the target is named by
``grpc.ssl_target_name_override``: a lane connects to the replicas' addresses, not to the name).

Renewal without a restart: the directory is followed as the key ring is (``goq.sidecar.adapters.secret_following``).
The server's credentials are dynamic: each new handshake takes the certificate in force then, and the
connections open keep theirs. A sender makes a new channel for each stream (``PeerLink``) and each large
transfer, from the certificate in force then; a stream already open keeps its connection. A renewed
pair is put in force only when its certificate and key belong together (a read that straddled the
kubelet's swap waits for the next poll).

The files are checked with Python's own ``ssl`` (OpenSSL, loaded anyway), not ``cryptography``: that
library would add about 9 MB to every sidecar, 15% of its memory budget, for two checks and a log line.
"""

import contextlib
import logging
import os
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import grpc

from goq.errors import ConfigError
from goq.identity import Address
from goq.names import service_name
from goq.sidecar.adapters.secret_following import POLL_INTERVAL, SecretFollower, fingerprint

log = logging.getLogger("goq.sidecar.tls")

CERT_FILE: Final = "tls.crt"
KEY_FILE: Final = "tls.key"
CA_FILE: Final = "ca.crt"
Options = Sequence[tuple[str, int | str]]


def service_host(destination: Address) -> str:
    """The name a destination's certificate is checked against: its Service, ``goq-<id>.<namespace>.svc``."""
    return f"{service_name(destination.identity)}.{destination.namespace}.svc"


class PeerCredentials(Protocol):
    """Opens the peer port and the channels to other sidecars' peer ports."""

    def bind(self, server: grpc.aio.Server, address: str) -> int:
        """Listen on ``address``; the port bound (0: could not)."""
        ...

    def channel(self, target: str, destination: Address, options: Options) -> grpc.aio.Channel:
        """A channel to one of ``destination``'s sidecars at ``target``."""
        ...


class Plaintext:
    """No TLS: for local runs and tests; the HMAC signature alone vouches for each envelope's sender."""

    def bind(self, server: grpc.aio.Server, address: str) -> int:
        return server.add_insecure_port(address)

    def channel(self, target: str, destination: Address, options: Options) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(target, options=options)


PLAINTEXT: Final = Plaintext()


@dataclass(frozen=True)
class TlsFiles:
    """The PEM bytes of one generation of the mounted Secret."""

    cert: bytes
    key: bytes
    ca: bytes

    @classmethod
    def load(cls, directory: Path) -> "TlsFiles":
        """Read and check the three files; ``ConfigError`` says which is missing or does not fit."""
        found = {}
        for name in (CERT_FILE, KEY_FILE, CA_FILE):
            try:
                found[name] = (directory / name).read_bytes()
            except OSError as exc:
                raise ConfigError(f"GOQ_TLS_DIR {directory}: cannot read {name} ({exc.strerror or exc})") from None
        files = cls(found[CERT_FILE], found[KEY_FILE], found[CA_FILE])
        files.check(directory)
        return files

    def check(self, directory: Path) -> None:
        """The certificate and the CA bundle parse, and the key is the certificate's (OpenSSL checks both when
        it loads them, as gRPC will)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            with _as_file(self.cert) as cert, _as_file(self.key) as key:
                context.load_cert_chain(cert, key, password=b"")  # an encrypted key fails: there is no password
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ConfigError(f"GOQ_TLS_DIR {directory}: {KEY_FILE} is not the key of {CERT_FILE}") from None
            raise ConfigError(f"GOQ_TLS_DIR {directory}: {CERT_FILE} and {KEY_FILE} do not load: {exc}") from None
        try:
            context.load_verify_locations(cadata=self.ca.decode("ascii"))
        except (ssl.SSLError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise ConfigError(f"GOQ_TLS_DIR {directory}: {CA_FILE} holds no PEM certificate: {exc}") from None


class MutualTls(SecretFollower[TlsFiles]):
    """Mutual TLS from the files in ``directory``, followed while running (``run``)."""

    noun = "TLS certificate"

    def __init__(self, directory: Path, *, interval: float = POLL_INTERVAL) -> None:
        seen = fingerprint(directory)  # before the read: a change during it shows at the first poll
        super().__init__(directory, TlsFiles.load(directory), log, interval=interval, seen=seen)
        self._client: tuple[TlsFiles, grpc.ChannelCredentials] | None = None

    @property
    def files(self) -> TlsFiles:
        """The files in force: new handshakes and new channels use them."""
        return self.in_force

    def load(self, directory: Path) -> TlsFiles:
        return TlsFiles.load(directory)

    def describe(self, value: TlsFiles) -> str:
        return describe(value.cert)

    def describe_change(self, old: TlsFiles, new: TlsFiles) -> str:
        return describe(new.cert)

    def bind(self, server: grpc.aio.Server, address: str) -> int:
        served = [self.files]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            """Called by gRPC at each handshake: the renewed certificate, once, when there is one."""
            files = self.files
            if files is served[0]:
                return None
            served[0] = files
            return _server_config(files)

        # grpcio's stub says the fetcher returns a configuration; gRPC documents None as "no change".
        credentials = grpc.dynamic_ssl_server_credentials(
            _server_config(self.files),
            fetch,  # type: ignore[arg-type]
            require_client_authentication=True,
        )
        return server.add_secure_port(address, credentials)

    def channel(self, target: str, destination: Address, options: Options) -> grpc.aio.Channel:
        files = self.files
        if self._client is None or self._client[0] is not files:
            credentials = grpc.ssl_channel_credentials(files.ca, files.key, files.cert)
            self._client = (files, credentials)
        name = ("grpc.ssl_target_name_override", service_host(destination))
        return grpc.aio.secure_channel(target, self._client[1], options=[*options, name])


def describe(pem: bytes) -> str:
    """A certificate's names and validity, for the log.

    ``_test_decode_cert`` is the one way the standard library reads a certificate that is not a peer's; it is
    private, so anything but the expected answer falls back to a plain description."""
    try:
        with _as_file(pem) as path:
            decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        names = [value for kind, value in decoded.get("subjectAltName", ()) if kind == "URI"]
        return f"{', '.join(names) or 'no URI name'}, valid until {decoded['notAfter']}"
    except (AttributeError, KeyError, TypeError, ValueError, ssl.SSLError):
        return "a certificate whose names could not be read"


def peer_credentials(directory: Path | None) -> PeerCredentials:
    """Mutual TLS from ``directory``; without one, plaintext, with a warning (once, at start)."""
    if directory is None:
        log.warning(
            "GOQ_TLS_DIR is not set: the peer port is plaintext; anyone on the network can read the messages "
            "and connect to it (see docs/sidecar.md, Peer security)"
        )
        return PLAINTEXT
    tls = MutualTls(directory)
    log.info("peer port: mutual TLS as %s", describe(tls.files.cert))
    return tls


def _server_config(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(files.key, files.cert)], root_certificates=files.ca)


@contextlib.contextmanager
def _as_file(data: bytes) -> Iterator[str]:
    """``data`` as a path OpenSSL can open, in memory (``memfd``): the root file system is read-only and the
    PEM bytes checked must be exactly those held, not what the directory holds a moment later."""
    fd = os.memfd_create("goq-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
