"""TLS to MariaDB: a server started with a certificate signed by a CA the
test makes with openssl, and the ssl-mode/ssl-ca/ssl-cert/ssl-key options
of a mysql:// --source, each checked by what the server lets in."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.migrate.conftest import rows
from tests.sources.mariadb import MariaDB


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=pgferry test {name}",
             cwd=d)  # fmt: skip


def _signed(d: Path, name: str, san: str | None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name,
             cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def tls_mariadb() -> Iterator[tuple[MariaDB, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pgferry-mariadb-tls-"))
    certs = root / "certs"
    certs.mkdir()
    _ca(certs, "ca")
    _ca(certs, "other")  # a CA that signed nothing here
    _signed(certs, "server", "IP:127.0.0.1")
    _signed(certs, "client", None)
    server = MariaDB(root=root, args=[
        f"--ssl-ca={certs}/ca.pem", f"--ssl-cert={certs}/server.pem",
        f"--ssl-key={certs}/server.key",
    ]).start()  # fmt: skip
    with server.admin() as c, c.cursor() as cur:
        cur.execute("CREATE DATABASE shop")
        cur.execute("CREATE TABLE shop.t (id int PRIMARY KEY, v varchar(10))")
        cur.execute("INSERT INTO shop.t VALUES (1, 'tls')")
        cur.execute("CREATE USER tls@'%' IDENTIFIED BY 'tls-pw-1' REQUIRE SSL")
        cur.execute("CREATE USER x509@'%' IDENTIFIED BY 'x509-pw-1' REQUIRE X509")
        cur.execute("GRANT SELECT, SHOW VIEW ON shop.* TO tls@'%', x509@'%'")
    yield server, certs
    server.stop()


def test_ssl_modes(
    tls_mariadb: tuple[MariaDB, Path],
    mariadb: MariaDB,
    target_db: str,
    run_cli: Callable[..., Result],
) -> None:
    server, certs = tls_mariadb
    base = f"mysql://tls:tls-pw-1@127.0.0.1:{server.port}/shop"
    n = iter(range(100))

    def clone(url: str) -> Result:
        return run_cli("clone", "--source", url, "--target", target_db, "-q", "--schema",
                       f"s{next(n)}")  # fmt: skip

    for query in (
        "?ssl-mode=required",
        "",  # preferred: TLS when the server offers it
        f"?ssl-mode=verify-ca&ssl-ca={certs}/ca.pem",
        f"?ssl-mode=verify-identity&ssl-ca={certs}/ca.pem",  # the certificate names 127.0.0.1
        f"?ssl-ca={certs}/ca.pem",  # ssl-ca alone means verify-ca
    ):
        r = clone(base + query)
        assert r.exit_code == 0, (query, r.output)
    assert rows(target_db, "SELECT * FROM s0.t") == [(1, "tls")]
    # the user must come over TLS: without it the server refuses the login
    r = clone(base + "?ssl-mode=disabled")
    assert r.exit_code == 1
    assert "rejected user 'tls' or its password" in r.stderr
    # a certificate not signed by the CA given
    r = clone(base + f"?ssl-mode=verify-ca&ssl-ca={certs}/other.pem")
    assert r.exit_code == 1
    assert r.stderr.startswith(
        f"error: source: TLS with 127.0.0.1:{server.port} failed (ssl-mode=verify-ca):"
        " CERTIFICATE_VERIFY_FAILED ("
    ), r.stderr
    assert r.stderr.strip().endswith(
        "; check ssl-mode and ssl-ca in --source against the server's certificate"
    )
    # the certificate is for 127.0.0.1, not for localhost
    r = clone(
        f"mysql://tls:tls-pw-1@localhost:{server.port}/shop"
        f"?ssl-mode=verify-identity&ssl-ca={certs}/ca.pem"
    )
    assert r.exit_code == 1
    assert (
        "failed (ssl-mode=verify-identity): CERTIFICATE_VERIFY_FAILED (Hostname mismatch,"
        " certificate is not valid for 'localhost'.)"
    ) in r.stderr
    # a client certificate for a REQUIRE X509 user
    x509 = (
        f"mysql://x509:x509-pw-1@127.0.0.1:{server.port}/shop"
        f"?ssl-mode=verify-ca&ssl-ca={certs}/ca.pem"
    )
    assert clone(x509).exit_code == 1
    r = clone(f"{x509}&ssl-cert={certs}/client.pem&ssl-key={certs}/client.key")
    assert r.exit_code == 0, r.output
    r = clone(f"{x509}&ssl-cert={certs}/missing.pem")
    assert r.exit_code == 2
    assert "--source: cannot read the TLS files given by ssl-ca/ssl-cert/ssl-key" in r.stderr
    # required against a server that offers no TLS (the suite's other one)
    r = clone(mariadb.url("mysql") + "?ssl-mode=required")
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"error: source: TLS with 127.0.0.1:{mariadb.port} failed (ssl-mode=required):"
        " SSL is required but the server doesn't support it; check ssl-mode and ssl-ca in"
        " --source against the server's certificate"
    )
    for secret in ("tls-pw-1", "x509-pw-1"):
        assert secret not in r.output


def test_verify_identity_checks_the_name_with_the_system_cas_too() -> None:
    # without ssl-ca the system's CAs sign; the name must still be checked
    from pgferry.sources.mysql import tls_context
    from pgferry.sources.url import MySQLURL, parse

    def ctx(query: str) -> Any:
        u = parse(f"mysql://u@db.example:3306/d{query}")
        assert isinstance(u, MySQLURL)
        return tls_context(u)

    identity = ctx("?ssl-mode=verify-identity")
    assert identity.check_hostname and identity.verify_mode == ssl.CERT_REQUIRED
    ca = ctx("?ssl-mode=verify-ca")
    assert not ca.check_hostname and ca.verify_mode == ssl.CERT_REQUIRED
    required = ctx("?ssl-mode=required")
    assert not required.check_hostname and required.verify_mode == ssl.CERT_NONE
    assert ctx("") is None and ctx("?ssl-mode=disabled") is None
