"""Real parts for egress proxy tests and the benchmark: an HTTPS upstream and a mitmdump process.

The upstream listens on 127.0.0.1 with a certificate (for ``localhost`` and
``127.0.0.1``) from its own throwaway CA, which the proxy is told to trust.
It records every request it receives, so a test can check what actually left
the proxy, and serves a few endpoints:

    /ok                  "ok"
    /echo                the request back: JSON body, Authorization echoed in a header
    /stream              chunked body carrying the Authorization value split across chunks
    /gzip-echo           /echo, gzip-encoded whatever the request asked for
                         (both take ?pad=N: N bytes of incompressible filler)
    /big?bytes=N         N bytes of filler, written in 1 MiB blocks
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from egress_proxy.ca import CAFiles, ensure_ca
from egress_proxy.state import write_state_file

ADDON = Path(__file__).resolve().parents[3] / "egress_proxy" / "addon.py"
MITMDUMP = Path(sys.executable).parent / "mitmdump"
BLOCK = b"0123456789abcdef" * 65536  # 1 MiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class UpstreamCerts:
    ca: Path
    cert: Path
    key: Path


def make_upstream_certs(directory: Path) -> UpstreamCerts:
    """A CA and a server certificate for localhost / 127.0.0.1, as an outside site would have."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test upstream CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certs = UpstreamCerts(directory / "upstream-ca.pem", directory / "upstream.pem", directory / "upstream.key")
    certs.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certs


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    peer_port: int

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each small
    # response would wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(self.command, self.path, list(self.headers.items()), body, self.client_address[1])
        with self.server.lock:
            self.server.received.append(received)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        auth = self.headers.get("authorization", "")
        if url.path == "/ok":
            self._send(200, b"ok")
        elif url.path in ("/echo", "/gzip-echo"):
            pad = os.urandom(int(query.get("pad", ["0"])[0]) // 2).hex()  # incompressible filler
            echoed = json.dumps({"method": self.command, "path": self.path, "headers": received.headers,
                                 "body": body.decode("utf-8", "replace"), "pad": pad}).encode()
            extra = {"x-echo-authorization": auth, "content-type": "application/json"}
            if url.path == "/gzip-echo":
                echoed, extra["content-encoding"] = gzip.compress(echoed), "gzip"
            self._send(200, echoed, extra)
        elif url.path == "/stream":
            self._stream_chunked([b"start:"] + [auth[i:i + 3].encode() for i in range(0, len(auth), 3)] + [b":end"])
        elif url.path == "/big":
            self._send_big(int(query.get("bytes", ["1048576"])[0]))
        else:
            self._send(404, b"no such endpoint")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream_chunked(self, parts: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for part in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            time.sleep(0.01)  # separate writes, so the proxy sees separate chunks
        self.wfile.write(b"0\r\n\r\n")

    def _send_big(self, size: int) -> None:
        self.send_response(200)
        self.send_header("content-length", str(size))
        self.send_header("content-type", "application/octet-stream")
        self.end_headers()
        remaining = size
        while remaining > 0:
            block = BLOCK[: min(len(BLOCK), remaining)]
            self.wfile.write(block)
            remaining -= len(block)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.received: list[Received] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Keep handler failures (TLS errors from odd clients) for the test instead of printing them.
        with self.lock:
            self.errors.append(repr(sys.exc_info()[1]))

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Handshake in the handler thread, so one slow client does not stall the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class Upstream:
    """The HTTPS upstream, served from a background thread."""

    def __init__(self, certs: UpstreamCerts) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.cert, certs.key)
        self._server = _Server(context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def received(self) -> list[Received]:
        with self._server.lock:
            return list(self._server.received)

    @property
    def errors(self) -> list[str]:
        with self._server.lock:
            return list(self._server.errors)

    def clear(self) -> None:
        with self._server.lock:
            self._server.received.clear()
            self._server.errors.clear()


@dataclass
class ProxyProcess:
    """A mitmdump child process; with ``addons=False`` it is plain mitmdump, for comparison."""

    workdir: Path
    upstream_ca: Path
    addons: bool = True
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def state_path(self) -> Path:
        return self.workdir / "egress-state.json"

    @property
    def audit_path(self) -> Path:
        return self.workdir / "egress-audit.jsonl"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mitmdump.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca(self) -> CAFiles:
        return ensure_ca(self.workdir / "ca")

    def write_state(self, sandboxes: dict[str, Any]) -> None:
        write_state_file(self.state_path, {"version": 1, "sandboxes": sandboxes})

    def start(self) -> None:
        command = [
            str(MITMDUMP), "--mode", "regular", "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
            "--set", f"confdir={self.ca.directory}",
            "--set", f"ssl_verify_upstream_trusted_ca={self.upstream_ca}",
            "--set", "termlog_verbosity=warn", "--set", "flow_detail=0",
        ]
        if self.addons:
            command += ["-s", str(ADDON), "--set", f"egress_state={self.state_path}",
                        "--set", f"egress_audit={self.audit_path}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmdump exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mitmdump did not listen within 20 s:\n{self.log_path.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cpu_seconds(self) -> float:
        """User + system CPU time the proxy process has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def __enter__(self) -> ProxyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RssSampler:
    """Samples a process's RSS every few milliseconds from a thread; ``peak`` is the highest seen."""

    def __init__(self, proxy: ProxyProcess, interval: float = 0.005) -> None:
        self._proxy = proxy
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = proxy.rss_bytes()
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proxy.rss_bytes())
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

