"""Where alerts land in tests: a tiny SMTP server and a Slack-compatible webhook receiver, each on a real
socket in a background thread, keeping what they received."""

from __future__ import annotations

import email
import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        """Every text part, decoded."""
        parts = self.message.walk() if self.message.is_multipart() else [self.message]
        return "\n".join(p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
                         for p in parts if p.get_content_maintype() == "text")

    @property
    def raw(self) -> str:
        return self.message.as_string()


class _SmtpHandler(socketserver.StreamRequestHandler):
    """RFC 5321 as far as smtplib needs it: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT (no TLS, no auth)."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        sender, recipients = "", []
        self.reply("220 test-smtp ready")
        while line := self.rfile.readline():
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250-test-smtp\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n" if verb == "EHLO"
                                 else b"250 test-smtp\r\n")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip().split()[0].strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                self.server.mails.append(Mail(sender, recipients, email.message_from_bytes(b"".join(lines))))
                self.reply("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.mails: list[Mail] = []

    @property
    def port(self) -> int:
        return self.server_address[1]


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body or b"{}")})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # quiet
        pass


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.posts: list[dict] = []

    @property
    def port(self) -> int:
        return self.server_address[1]


@dataclass
class Receivers:
    smtp: SmtpServer = field(default_factory=SmtpServer)
    webhook: WebhookServer = field(default_factory=WebhookServer)
    recipients: str = "oncall@example.com, finance@example.com"
    webhook_path: str = "/services/T000/B000/test-webhook"

    def start(self) -> Receivers:
        for server in (self.smtp, self.webhook):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in (self.smtp, self.webhook):
            server.shutdown()
            server.server_close()

    def connections(self) -> dict[str, dict]:
        """The alert channels as Airflow connections (``AIRFLOW_CONN_<ID>`` JSON values)."""
        return {
            "MAMO_ALERTS_SMTP": {"conn_type": "smtp", "host": "127.0.0.1", "port": self.smtp.port,
                                 "extra": {"to": self.recipients, "from_email": "airflow@example.com",
                                           "disable_tls": True, "disable_ssl": True, "timeout": 10,
                                           "retry_limit": 1}},
            "MAMO_ALERTS_SLACK": {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{self.webhook.port}",
                                  "password": self.webhook_path.lstrip("/")},
        }

    def wait(self, mails: int = 1, posts: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.smtp.mails) >= mails and len(self.webhook.posts) >= posts:
                return
            time.sleep(0.2)
        raise AssertionError(f"expected {mails} mail(s) and {posts} webhook post(s), got "
                             f"{len(self.smtp.mails)} and {len(self.webhook.posts)}")
