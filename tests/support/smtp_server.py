"""SMTP server for restock's mail tests (aiosmtpd).

Listens on 127.0.0.1:PORT with STARTTLS required (certificate issued by a
throw-away CA written to DIR/ca.pem) and AUTH PLAIN/LOGIN for one user.
--data-replies scripts the replies to the first DATA commands (4xx or
5xx). Each accepted message is written to DIR/mail/N.eml with its envelope in
DIR/mail/N.json. Prints READY once listening; stops on SIGTERM or when
stdin closes.

The server is as strict as stock ones: aiosmtpd's default limits (a DATA
line over 1001 octets with its CRLF is answered `500 Line too long`) and,
as Postfix does with `smtpd_forbid_bare_newline`, a message carrying a
bare LF is refused.
"""

import argparse
import json
import os
import re
import signal
import ssl
import sys
import threading

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument(
        "--data-replies",
        default="",
        help="comma-separated replies to the first DATA commands, e.g. 451,250,554; then 250",
    )
    args = ap.parse_args()

    mail_dir = os.path.join(args.dir, "mail")
    os.makedirs(mail_dir, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(os.path.join(args.dir, "ca.pem"))
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ctx)

    scripted = [c for c in args.data_replies.split(",") if c]
    counter = {"n": 0}
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                if scripted:
                    code = scripted.pop(0)
                    if code.startswith("4"):
                        return f"{code} 4.3.0 Try again later"
                    if code.startswith("5"):
                        return f"{code} 5.7.1 Message refused by policy"
            raw = envelope.original_content or envelope.content
            if isinstance(raw, str):
                raw = raw.encode()
            if re.search(rb"(?<!\r)\n", raw):
                return "521 5.5.2 Error: bare <LF> received"
            with lock:
                counter["n"] += 1
                n = counter["n"]
            base = os.path.join(mail_dir, str(n))
            with open(base + ".eml.tmp", "wb") as f:
                f.write(raw)
            with open(base + ".json", "w") as f:
                json.dump(
                    {
                        "mail_from": envelope.mail_from,
                        "rcpt_tos": envelope.rcpt_tos,
                        "tls": session.ssl is not None,
                        "user": session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
                    },
                    f,
                )
            os.rename(base + ".eml.tmp", base + ".eml")
            return "250 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=args.port,
        tls_context=ctx,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    print("READY", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
