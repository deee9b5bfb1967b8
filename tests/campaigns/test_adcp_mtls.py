"""Mutual TLS to AdCP sellers that demand it: the seller's client certificate (its key stored only encrypted)
and the seller's own CA, on the client of that seller alone; the sandbox served over https requiring a client
certificate issued by a test CA made here."""

from __future__ import annotations

import ssl
from contextlib import ExitStack
from datetime import UTC, datetime
from ipaddress import IPv4Address

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from buyer.sandbox import create_app as create_iab_app
from buyer.sandbox_adcp import create_app as create_adcp_app
from buyer.sellers.forms import SellerAdminForm
from buyer.sellers.models import Seller
from buyer.sellers.tls import check_client_tls
from campaigns.models import JobStage, JobStatus
from tests.campaigns.test_adcp_sellers import adcp_lines, booked, brief
from tests.campaigns.test_flow import new_job, run
from tests.conftest import serve_in_thread
from tests.sandbox_adcp._support import Clock

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning:adcp._null_clear"),
]


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert(subject: str, key, *, issuer=None, issuer_key=None, ca=False, server=False):
    # Valid whatever the date: the suite also runs with the clock moved years ahead, and OpenSSL checks the
    # certificate against the real one.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 12, 31, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and two client certificates: one from the CA, one not."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("127.0.0.1", server_key, issuer=ca, issuer_key=ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("buyer", client_key, issuer=ca, issuer_key=ca_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("buyer-2", other_key, issuer=ca, issuer_key=ca_key)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _cert("stranger", stranger_key)
    for name, item in (("ca.pem", ca), ("server.pem", server), ("server.key", server_key)):
        (folder / name).write_text(_pem(item))
    return {
        "dir": folder,
        "ca": _pem(ca),
        "client": (_pem(client), _pem(client_key)),
        "client_2": (_pem(other), _pem(other_key)),
        "stranger": (_pem(stranger), _pem(stranger_key)),
    }


@pytest.fixture
def mtls_sellers(fast_sellers, settings, pki):
    """The IAB sandbox, and the AdCP sandbox over https demanding a client certificate from the test CA."""
    settings.SELLER_TIMEOUT_SECONDS = 10
    folder = pki["dir"]
    with ExitStack() as stack:
        iab_url = stack.enter_context(serve_in_thread(create_iab_app(catalog="default")))
        adcp = create_adcp_app(clock=Clock())
        url = stack.enter_context(
            serve_in_thread(
                adcp,
                ssl_certfile=str(folder / "server.pem"),
                ssl_keyfile=str(folder / "server.key"),
                ssl_ca_certs=str(folder / "ca.pem"),
                ssl_cert_reqs=ssl.CERT_REQUIRED,
            )
        )
        Seller.objects.create(name="IAB Sandbox", base_url=iab_url)
        seller = Seller(name="AdCP Sandbox", base_url=url, protocol="adcp", tls_ca=pki["ca"])
        seller.set_credential("buyer-token")
        seller.save()
        yield adcp, seller


def _present(seller, pair):
    seller.tls_client_cert = pair[0]
    seller.set_tls_client_key(pair[1])
    seller.save()


def test_a_seller_demanding_mutual_tls_gets_our_client_certificate_and_books(mtls_sellers, pki):
    adcp, seller = mtls_sellers
    _present(seller, pki["client"])
    assert "PRIVATE KEY" not in seller.tls_client_key_ciphertext
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    deals = booked(job, "AdCP Sandbox")
    assert deals and {d.deal_id for d in deals} == set(adcp.state.sandbox.media_buys)


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_without_an_accepted_certificate_the_seller_is_unreachable_and_the_other_seller_books(mtls_sellers, pki, who):
    adcp, seller = mtls_sellers
    if who == "stranger":
        _present(seller, pki["stranger"])
    job = run(new_job(auto_approve=True, **brief()), JobStage.PLAN, JobStage.RESEARCH, JobStage.BOOK)
    assert job.status == JobStatus.COMPLETED, job.errors
    assert booked(job, "IAB Sandbox") and not adcp_lines(job) and not adcp.state.sandbox.media_buys
    assert any("AdCP Sandbox" in str(e) for e in job.errors), job.errors


def test_the_seller_form_checks_the_certificate_and_key_and_keeps_the_key_write_only(pki):
    cert, key = pki["client"]
    base = {
        "name": "Secure",
        "base_url": "https://secure.example",
        "enabled": "on",
        "trust_level": "standard",
        "protocol": "adcp",
        "mcp_transport": "streamable_http",
        "max_concurrency": "4",
        "credential_scheme": "api_key",
    }
    form = SellerAdminForm(data={**base, "tls_client_cert": cert, "tls_client_key": key, "tls_ca": pki["ca"]})
    assert form.is_valid(), form.errors
    seller = form.save()
    assert seller.get_tls_client_key().strip() == key.strip() and key not in seller.tls_client_key_ciphertext
    assert key.splitlines()[1] not in str(SellerAdminForm(instance=seller))  # never rendered back
    # Blank keeps the stored key; another certificate without its key is refused, naming the problem.
    kept = SellerAdminForm(data={**base, "tls_client_cert": cert, "tls_ca": pki["ca"]}, instance=seller)
    assert kept.is_valid(), kept.errors
    wrong = SellerAdminForm(data={**base, "tls_client_cert": pki["stranger"][0]}, instance=seller)
    assert not wrong.is_valid() and "not the certificate's" in wrong.errors["tls_client_key"][0]
    garbage = SellerAdminForm(data={**base, "tls_client_cert": "not a pem", "tls_client_key": key})
    assert not garbage.is_valid() and "Mutual TLS" in str(garbage.errors)
    with pytest.raises(ValueError, match="needs its private key"):
        check_client_tls(cert_pem=cert, key_pem="", ca_pem="")
