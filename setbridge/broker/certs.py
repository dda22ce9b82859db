"""A certificate authority for the stage and a certificate for its broker, made with ``openssl``.

The CA (``ca.crt``, given to every client; ``ca.key``, readable by root only and best kept off the
Pi once done) signs the broker's certificate (``server.crt``, and ``server.key`` readable by the
``mosquitto`` group only). Run again with the CA key present, it renews the broker's certificate
under the same CA, so the lights, which pin the CA, keep connecting.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import SetbridgeError

DEFAULT_DIR = Path("/etc/mosquitto/certs")
CA_DAYS = 3650
SERVER_DAYS = 825
"""What the platforms that check TLS most strictly accept for a server certificate."""
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class CertFiles:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def key(self) -> Path:
        return self.dir / "server.key"


def default_hosts() -> list[str]:
    """Names every client on this machine can use: ``localhost``, ``127.0.0.1``, the host name
    and its ``.local`` (mDNS) name."""
    name = socket.gethostname().split(".")[0].lower()
    hosts = ["localhost", "127.0.0.1"]
    if name and name != "localhost" and _DNS_NAME.match(name):
        hosts += [name, f"{name}.local"]
    return hosts


def subject_alt_names(hosts: list[str]) -> str:
    """``IP:…,DNS:…`` for openssl; one-line error for a host that is neither an address nor a name."""
    out: list[str] = []
    for host in hosts:
        try:
            out.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            if not _DNS_NAME.match(host):
                raise SetbridgeError(f"--host {host!r} is neither an IP address nor a DNS name") from None
            out.append(f"DNS:{host}")
    return ",".join(dict.fromkeys(out))


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        raise SetbridgeError("openssl is not installed; install it with: apt-get install openssl")
    result = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise SetbridgeError(f"openssl {args[0]} failed: {lines[-1] if lines else result.returncode}")


def _private(path: Path, group: str | None = None) -> None:
    """Readable by its owner (root) only, or by ``group`` too when it exists (the broker's)."""
    path.chmod(0o600)
    if group and os.geteuid() == 0:
        try:
            os.chown(path, 0, grp.getgrnam(group).gr_gid)
        except KeyError:
            return
        path.chmod(0o640)


def make_certs(dir: Path, name: str, hosts: list[str], new_ca: bool = False) -> list[Path]:
    """Make (or reuse) the CA in ``dir`` and a new broker certificate naming ``hosts``."""
    files = CertFiles(dir)
    san = subject_alt_names(hosts)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$", name):
        raise SetbridgeError(f"--name {name!r}: use letters, digits, space, dot, dash (e.g. the stage's name)")
    dir.mkdir(parents=True, exist_ok=True)
    dir.chmod(0o755)  # the broker's own user must reach its files
    written: list[Path] = []
    have_ca = files.ca_cert.exists()
    if have_ca and not files.ca_key.exists() and not new_ca:
        raise SetbridgeError(f"{files.ca_cert} exists but {files.ca_key} does not: put the CA key back to renew "
                             "the broker's certificate under the same CA, or pass --new-ca (every light then "
                             "needs the new ca.der: setbridge light provision)")
    with tempfile.TemporaryDirectory(dir=dir, prefix=".certs-") as tmp:
        work = Path(tmp)
        if new_ca or not have_ca:
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(CA_DAYS), "-subj",
                     f"/CN={name} setbridge CA", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-keyout", "ca.key", "-out", "ca.crt", cwd=work)
            _private(work / "ca.key")
            os.replace(work / "ca.key", files.ca_key)
            (work / "ca.crt").chmod(0o644)
            os.replace(work / "ca.crt", files.ca_cert)
            written += [files.ca_cert, files.ca_key]
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", "server.key", "-out", "server.csr", cwd=work)
        (work / "ext.cnf").write_text(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                                      "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                      "extendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", str(files.ca_cert), "-CAkey", str(files.ca_key),
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(SERVER_DAYS),
                 "-extfile", "ext.cnf", "-out", "server.crt", cwd=work)
        _private(work / "server.key", group="mosquitto")
        (work / "server.crt").chmod(0o644)
        os.replace(work / "server.key", files.key)
        os.replace(work / "server.crt", files.cert)
    return written + [files.cert, files.key]
