"""HTTPS on localhost for the Office add-in: a private certificate authority made on this machine and a
server certificate for localhost and 127.0.0.1 that it signs.

Excel on the web and on the Mac load add-ins over HTTPS only, so `finsent serve --https-port` needs a
certificate the user's browser and Excel trust. The CA is the user's own: made here, its key never
leaves this folder (readable by the user only), and it is limited by X.509 name constraints to
localhost and loopback addresses, so even a stolen CA key cannot sign a certificate for a real site.
`finsent certs --trust` adds the CA to the user's store (no admin rights: Windows' CurrentUser root
store, macOS' login keychain, Chromium/Firefox's NSS database on Linux); the server certificate is
renewed without touching the trust (same CA).
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..files import write_text_atomically

CA_DAYS = 3650
# Apple refuses TLS server certificates valid for more than 825 days even under a user's own root;
# 397 days also keeps within browsers' public limit. Renewed in place when 30 days are left.
SERVER_DAYS = 397
RENEW_BEFORE_DAYS = 30
SERVER_NAMES = ("localhost",)
# The HTTPS listener is on 127.0.0.1 only (clients that try ::1 for "localhost" fall back to it), so
# the certificate names no more than that.
SERVER_ADDRESSES = ("127.0.0.1",)


class CertificateError(Exception):
    """A problem the user can fix, said in one line."""


@dataclass(frozen=True)
class LocalCertificates:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "finsent-local-ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "finsent-local-ca.key"

    @property
    def cert(self) -> Path:
        return self.folder / "localhost.pem"

    @property
    def key(self) -> Path:
        return self.folder / "localhost.key"


def default_folder() -> Path:
    env = os.environ.get("FINSENT_TLS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_path

    return user_config_path("finsent-local", appauthor=False) / "tls"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_pem(path: Path, data: bytes) -> None:
    # Written through a temporary file made by mkstemp: readable and writable by this user only (0600).
    write_text_atomically(path, data.decode("ascii"))


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _create_ca(certs: LocalCertificates) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    who = f"{getpass.getuser()}@{socket.gethostname()}"[:40]
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FinSent Local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"FinSent Local CA ({who})")])
    now = _now()
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(n) for n in SERVER_NAMES]
        + [x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")), x509.IPAddress(ipaddress.ip_network("::1/128"))],
        excluded_subtrees=None)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(constraints, critical=True)
            # what it may sign for: TLS servers, nothing else (no code signing, no e-mail, no clients)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    certs.folder.mkdir(parents=True, exist_ok=True)
    _write_pem(certs.ca_key, _key_pem(key))
    _write_pem(certs.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def _issue_server_certificate(certs: LocalCertificates) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names = [x509.DNSName(n) for n in SERVER_NAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_pem(certs.key, _key_pem(key))
    _write_pem(certs.cert, cert.public_bytes(serialization.Encoding.PEM))


def _signed_by_the_ca(certs: LocalCertificates) -> bool:
    """Whether the server certificate was issued by the CA now in the folder (a CA made anew, after
    the folder was partly deleted, cannot vouch for the old certificate: browsers would refuse it)."""
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificate(certs.cert.read_bytes())
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(certs.ca_cert.read_bytes()))
    except Exception:  # InvalidSignature, ValueError, TypeError: another issuer, or a damaged file
        return False
    return True


def expires(path: Path) -> dt.datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def ensure_certificates(folder: Path | None = None, renew: bool = False) -> tuple[LocalCertificates, list[str]]:
    """The CA and server certificate, made or renewed when needed; what was done, as lines for the user."""
    certs = LocalCertificates(folder or default_folder())
    done = []
    try:
        if not (certs.ca_cert.exists() and certs.ca_key.exists()):
            _create_ca(certs)
            done.append(f"created a local certificate authority: {certs.ca_cert} (trust it once: finsent certs --trust)")
        due = not (certs.cert.exists() and certs.key.exists()) or not _signed_by_the_ca(certs) or \
            expires(certs.cert) - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS)
        if renew or due:
            _issue_server_certificate(certs)
            done.append(f"issued the localhost certificate: {certs.cert} (valid until {expires(certs.cert):%Y-%m-%d})")
    except OSError as e:
        raise CertificateError(f"cannot write certificates in {certs.folder}: {e.strerror or e}") from None
    except ValueError as e:  # an unreadable PEM file
        raise CertificateError(f"a certificate file in {certs.folder} is damaged ({e}); "
                               "delete the folder and run: finsent certs") from None
    return certs, done


@dataclass(frozen=True)
class TrustStep:
    argv: list[str] | None  # None: the user does it (shown as `howto`)
    howto: str


def trust_steps(ca_cert: Path, system: str | None = None) -> list[TrustStep]:
    """How to make this user's browsers and Excel trust the CA, without admin rights where possible."""
    system = system or platform.system()
    path = str(ca_cert)
    if system == "Windows":  # the CurrentUser store: Windows asks the user to confirm in a dialog
        return [TrustStep(["certutil", "-user", "-addstore", "Root", path],
                          f'certutil -user -addstore Root "{path}"  (Windows asks you to confirm)')]
    if system == "Darwin":  # the login keychain: macOS asks for the user's password
        keychain = str(Path.home() / "Library" / "Keychains" / "login.keychain-db")
        return [TrustStep(["security", "add-trusted-cert", "-r", "trustRoot", "-p", "ssl", "-k", keychain, path],
                          f'security add-trusted-cert -r trustRoot -p ssl -k "{keychain}" "{path}"'
                          "  (macOS asks for your password)")]
    nssdb = Path.home() / ".pki" / "nssdb"
    steps = [TrustStep(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "FinSent Local CA", "-i", path]
                       if shutil.which("certutil") else None,
                       f'certutil -d sql:{nssdb} -A -t "C,," -n "FinSent Local CA" -i "{path}"'
                       "  (Chromium and Chrome; certutil is in libnss3-tools)")]
    steps.append(TrustStep(None, f"system-wide (needs root): sudo cp \"{path}\" /usr/local/share/ca-certificates/"
                                 "finsent-local-ca.crt && sudo update-ca-certificates"))
    return steps


def _is_certificate_alone(path: Path) -> bool:
    """A PEM file of certificates and nothing else (no key): what --export --force may replace."""
    try:
        pem = Path(path).read_bytes()
    except OSError:
        return False
    return pem.lstrip().startswith(b"-----BEGIN CERTIFICATE-----") and b"PRIVATE KEY" not in pem


def export_ca(certs: LocalCertificates, target: Path, force: bool = False) -> Path:
    """Copy the authority's certificate (never its key) to `target`, for another system to trust: Windows
    when the server runs in WSL2. Re-exporting the same certificate is fine; another certificate is
    replaced only with --force, and any other file never (output_place's rules)."""
    from ..files import write_text_atomically
    from ..output_place import FileOutput, OutputRefused, check_file_output

    pem = certs.ca_cert.read_bytes()
    if not _is_certificate_alone(certs.ca_cert):
        raise CertificateError(f"{certs.ca_cert} is not a certificate alone; not exporting it")
    target = Path(target)
    same = target.is_file() and target.read_bytes() == pem
    if not same:
        try:
            check_file_output(FileOutput(target, "--export", "a PEM certificate", _is_certificate_alone),
                              [certs.folder], force)
        except OutputRefused as e:
            raise CertificateError(str(e)) from None
    write_text_atomically(target, pem.decode("ascii"), mode=0o644)
    return target


def windows_path(path: Path) -> str:
    """The path as Windows names it: WSL2's /mnt/c/Users/... is C:\\Users\\...; other paths as they are."""
    parts = Path(path).resolve().parts
    if len(parts) >= 3 and parts[1] == "mnt" and len(parts[2]) == 1 and parts[2].isalpha():
        return parts[2].upper() + ":\\" + "\\".join(parts[3:])
    return str(path)


def _ensure_nss_database(folder: Path) -> None:
    """The user's NSS database (what Chromium reads on Linux), created empty when there is none yet."""
    if (folder / "cert9.db").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{folder}", "--empty-password"], capture_output=True, timeout=60)


@dataclass(frozen=True)
class TrustOutcome:
    lines: list[str]  # what happened and what is left to the user
    trusted: int  # trust stores that now hold the authority


def trust(ca_cert: Path) -> TrustOutcome:
    """Run the steps this system allows."""
    lines, trusted = [], 0
    for step in trust_steps(ca_cert):
        if step.argv is None:
            lines.append(f"to do yourself: {step.howto}")
            continue
        if step.argv[0] == "certutil" and "-d" in step.argv:
            _ensure_nss_database(Path.home() / ".pki" / "nssdb")
        try:
            proc = subprocess.run(step.argv, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            lines.append(f"could not run {step.argv[0]} ({e}); do it yourself: {step.howto}")
            continue
        if proc.returncode == 0:
            trusted += 1
            lines.append(f"trusted: {step.howto.split('  (')[0]}")
        else:
            why = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            lines.append(f"{step.argv[0]} failed ({why[0]}); do it yourself: {step.howto}")
    return TrustOutcome(lines, trusted)
