"""Parse one RFC 822 message (path in argv[1]) with Python's email module
and print its parts as JSON, for restock's mail tests."""

import base64
import email
import email.policy
import json
import sys

with open(sys.argv[1], "rb") as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)

parts = []
for part in msg.walk():
    entry = {
        "content_type": part.get_content_type(),
        "filename": part.get_filename(),
        "content_id": part.get("Content-ID"),
        "disposition": part.get_content_disposition(),
    }
    if not part.is_multipart():
        payload = part.get_payload(decode=True) or b""
        entry["base64"] = base64.b64encode(payload).decode()
        if part.get_content_maintype() == "text":
            entry["text"] = part.get_content()
    parts.append(entry)

print(json.dumps({
    "subject": msg["Subject"],
    "from": msg["From"],
    "to": msg["To"],
    "cc": msg["Cc"],
    "message_id": msg["Message-ID"],
    "parts": parts,
}))
