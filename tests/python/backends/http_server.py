"""An MCP server over HTTP (Python SDK, FastMCP under uvicorn) used as a real
http backend in the gateway tests.

usage: http_server.py NAME TRANSPORT [--port N] [--tls-dir DIR] [--notifications-as-empty-sse]

TRANSPORT is `streamable-http` (endpoint /mcp) or `sse` (stream /sse,
messages /messages/). The server binds 127.0.0.1 (port 0 = any free port)
and prints `PORT <n>` on stdout once listening. With --tls-dir it serves
https with a certificate for 127.0.0.1/localhost signed by a CA it creates,
whose certificate it writes to DIR/ca.pem (clients trust it through
SSL_CERT_FILE); an existing DIR/ca.pem + DIR/ca.key are reused. With
--notifications-as-empty-sse a POST the SDK answers 202 Accepted (a
notification, such as `notifications/initialized`) is answered 200 with
`Content-Type: text/event-stream`, an empty chunked body and no session id
instead, as some lenient servers do."""

import argparse
import datetime
import os
import socket
import sys

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.transport_security import TransportSecuritySettings

parser = argparse.ArgumentParser()
parser.add_argument("name")
parser.add_argument("transport", choices=["streamable-http", "sse"])
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--tls-dir")
parser.add_argument("--notifications-as-empty-sse", action="store_true")
args = parser.parse_args()

NAME = args.name
mcp = FastMCP(
    NAME,
    # Tests reach the server as 127.0.0.1:<port>; no DNS-rebinding check.
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
)


@mcp.tool(description="Echo the text back, tagged with the server name.")
def echo(text: str) -> str:
    return f"{NAME}: {text}"


@mcp.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@mcp.tool(description="Report progress in steps, then return.")
async def count(steps: int, ctx: Context) -> str:
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
    return f"counted {steps}"


@mcp.tool(description="Return a large text of n bytes.")
def big(n: int) -> str:
    return "x" * n


@mcp.tool(description="The process id of the server.")
def pid() -> str:
    return str(os.getpid())


def make_certificates(directory: str) -> tuple[str, str]:
    """A CA (kept in `directory`) and a leaf for 127.0.0.1 and localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    ca_cert_path = os.path.join(directory, "ca.pem")
    ca_key_path = os.path.join(directory, "ca.key")
    now = datetime.datetime.now(datetime.timezone.utc)
    if os.path.exists(ca_cert_path) and os.path.exists(ca_key_path):
        with open(ca_cert_path, "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        with open(ca_key_path, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "guardway test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        with open(ca_key_path, "wb") as f:
            f.write(ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ))
        with open(ca_cert_path, "wb") as f:
            f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_cert_path = os.path.join(directory, "leaf.pem")
    leaf_key_path = os.path.join(directory, "leaf.key")
    with open(leaf_key_path, "wb") as f:
        f.write(leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
    with open(leaf_cert_path, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    return leaf_cert_path, leaf_key_path


def notifications_as_empty_sse(app):
    """ASGI middleware: a 202 answer becomes 200, text/event-stream, no body."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        accepted = False

        async def rewrite(message):
            nonlocal accepted
            if message["type"] == "http.response.start" and message["status"] == 202:
                accepted = True
                # No length (the empty body is sent chunked) and no session id,
                # as such servers answer.
                headers = [
                    (k, v) for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-type", b"content-length", b"mcp-session-id")
                ]
                headers.append((b"content-type", b"text/event-stream"))
                message = {**message, "status": 200, "headers": headers}
            elif message["type"] == "http.response.body" and accepted:
                message = {**message, "body": b""}
            await send(message)

        await app(scope, receive, rewrite)

    return wrapped


def main() -> None:
    app = mcp.streamable_http_app() if args.transport == "streamable-http" else mcp.sse_app()
    if args.notifications_as_empty_sse:
        app = notifications_as_empty_sse(app)
    ssl = {}
    if args.tls_dir:
        cert, key = make_certificates(args.tls_dir)
        ssl = {"ssl_certfile": cert, "ssl_keyfile": key}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning", **ssl)
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    sys.stderr.write(f"{NAME} serving {args.transport}\n")
    sys.stderr.flush()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
