"""Loopback stand-ins for the alert sinks' servers: an SMTP server (aiosmtpd) and a fake Slack Web API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from ingest_assets_tests.dagster_dev import free_port


@dataclass
class Mailbox:
    """What the SMTP server received: envelopes' recipients, the messages, the logins."""

    recipients: list[list[str]] = field(default_factory=list)
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


@contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A plain SMTP server on a loopback port that accepts any login (no TLS: AUTH allowed in clear)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


@dataclass(frozen=True)
class SlackPost:
    path: str
    authorization: str
    channel: str
    text: str


@contextmanager
def slack_server(status: int = 200) -> Iterator[tuple[str, list[SlackPost]]]:
    """A fake Slack Web API on a loopback port: records chat.postMessage calls, answers `ok` (or `status`)."""
    posts: list[SlackPost] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            posts.append(SlackPost(self.path, self.headers["Authorization"], body["channel"], body["text"]))
            answer = json.dumps({"ok": status == 200, "channel": body["channel"], "ts": "1.0"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/", posts
    finally:
        server.shutdown()
        server.server_close()
