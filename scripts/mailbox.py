#!/usr/bin/env python3
"""sluice's local mailbox: a real SMTP server (aiosmtpd) that keeps every
email it receives and lets people and tests read them over HTTP.

SMTP, both with AUTH (PLAIN, LOGIN) required:
  --smtp-port   STARTTLS, required before AUTH and MAIL (submission)
  --smtps-port  implicit TLS (smtps)
HTTP (JSON), on --http-port:
  GET    /api/messages[?to=address]   every email, oldest first
  GET    /api/messages/<id>           one email
  DELETE /api/messages                forget them all
  GET    /healthz, /readyz

The server's certificate is issued by a local CA made on first start in
--dir (ca.pem: give it to the notifier as SLUICE_SMTP_CA_FILE). Received
emails are appended to <dir>/messages.jsonl, so a restart keeps them.
Installed by scripts/deps.sh into .deps/mailbox-venv (deploy/deps/mailbox.txt).
"""
import argparse
import datetime
import ipaddress
import itertools
import json
import logging
import os
import signal
import ssl
import threading
import time
import warnings
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

logging.basicConfig(level=logging.INFO, format="mailbox: %(message)s")
logging.getLogger("mail.log").setLevel(logging.ERROR)
# The SMTPS listener requires AUTH over a connection that is all TLS;
# aiosmtpd cannot tell and warns.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
log = logging.getLogger("mailbox")


def make_certificates(directory):
    """A CA and a server certificate for localhost / 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    paths = {n: os.path.join(directory, n) for n in ("ca.pem", "cert.pem", "key.pem")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice local mailbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths["cert.pem"], "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(paths["key.pem"], "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


class Mailbox:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.messages = []
        if os.path.exists(path):
            with open(path) as f:
                self.messages = [json.loads(line) for line in f if line.strip()]
        self.ids = itertools.count(max((int(m["id"]) for m in self.messages), default=0) + 1)

    def add(self, record):
        with self.lock:
            record["id"] = str(next(self.ids))
            self.messages.append(record)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        return record

    def list(self, to=None):
        with self.lock:
            out = list(self.messages)
        if to:
            out = [m for m in out if to.lower() in (a.lower() for a in m["envelope_to"])]
        return out

    def clear(self):
        with self.lock:
            self.messages = []
            open(self.path, "w").close()


class Handler:
    def __init__(self, mailbox, listener):
        self.mailbox, self.listener = mailbox, listener

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        body = msg.get_body(("plain", "html"))
        record = self.mailbox.add({
            "received_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "listener": self.listener,
            "tls": self.listener == "smtps" or session.ssl is not None,
            "auth_user": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword) else None,
            "envelope_from": envelope.mail_from,
            "envelope_to": list(envelope.rcpt_tos),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "headers": {k: str(v) for k, v in msg.items()},
            "text": body.get_content() if body is not None else "",
        })
        log.info("received %s for %s: %s", record["id"], ",".join(record["envelope_to"]), record["subject"])
        return "250 2.0.0 Message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode() and auth_data.password == password.encode())
        # handled=False: aiosmtpd answers 535 itself when ok is False.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return check


def serve_http(mailbox, host, port):
    class Api(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def parts(self):
            path, _, query = self.path.partition("?")
            args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            from urllib.parse import unquote
            return [p for p in path.split("/") if p], {k: unquote(v) for k, v in args.items()}

        def do_GET(self):
            p, args = self.parts()
            if p in (["healthz"], ["readyz"]):
                return self.reply(200, {"ok": True})
            if p == ["api", "messages"]:
                return self.reply(200, mailbox.list(args.get("to")))
            if len(p) == 3 and p[:2] == ["api", "messages"]:
                m = next((m for m in mailbox.list() if m["id"] == p[2]), None)
                return self.reply(200, m) if m else self.reply(404, {"error": "no such message"})
            self.reply(404, {"error": "no such route"})

        def do_DELETE(self):
            p, _ = self.parts()
            if p == ["api", "messages"]:
                mailbox.clear()
                return self.reply(200, {"deleted": True})
            self.reply(404, {"error": "no such route"})

    server = ThreadingHTTPServer((host, port), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--dir", required=True)
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--smtp-port", type=int, default=2587)
    a.add_argument("--smtps-port", type=int, default=2465)
    a.add_argument("--http-port", type=int, default=8025)
    a.add_argument("--user", default="sluice")
    a.add_argument("--password", default="sluice")
    args = a.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    certs = make_certificates(args.dir)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs["cert.pem"], certs["key.pem"])
    mailbox = Mailbox(os.path.join(args.dir, "messages.jsonl"))
    common = dict(hostname=args.host, auth_required=True, server_hostname="localhost",
                  authenticator=authenticator(args.user, args.password), ready_timeout=10)
    controllers = [
        Controller(Handler(mailbox, "starttls"), port=args.smtp_port, tls_context=tls,
                   require_starttls=True, **common),
        # aiosmtpd does not count implicit TLS as TLS for auth_require_tls;
        # the whole connection is TLS here.
        Controller(Handler(mailbox, "smtps"), port=args.smtps_port, ssl_context=tls,
                   auth_require_tls=False, **common),
    ]
    for c in controllers:
        c.start()
    http = serve_http(mailbox, args.host, args.http_port)
    log.info("SMTP with STARTTLS on %s:%d, SMTPS on %s:%d, mail at http://%s:%d/api/messages",
             args.host, args.smtp_port, args.host, args.smtps_port, args.host, args.http_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    http.shutdown()
    for c in controllers:
        c.stop()


if __name__ == "__main__":
    main()
