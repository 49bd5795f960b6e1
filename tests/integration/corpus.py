# SPDX-License-Identifier: GPL-2.0-or-later
"""The deterministic test corpus, and seeding it into a mailbox over IMAP.

Same seed, same bytes: every message, folder, date and flag is derived from
fixed data (random.Random with a fixed seed for filler text). Seeding uses
IMAP APPEND with explicit INTERNALDATEs, so the server assigns UIDs in corpus
order.
"""

import base64
import datetime
import glob
import imaplib
import os
import random

# Folders, in creation order. Names are UTF-8 here; imaplib needs them in
# modified UTF-7 on the wire (mutf7_encode below).
FOLDERS = [
    "INBOX",
    "Archive",
    "Archive/2024",
    "Archive/2024/Q1",
    "Entwürfe",
    "Отправленные",
    "Project X",
    "Empty",
    "Lists/",          # trailing delimiter: a \Noselect parent
    "Lists/debian",
    "PyEmail",
    "Trash",
    "Sent",
]

PYEMAIL_DIR = "/usr/lib/python3.11/test/test_email/data"


def mutf7_encode(s):
    """RFC 3501 modified UTF-7, for the test side only."""
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "&":
            j = s.index("-", i)
            if j == i + 1:
                out.append("&")
            else:
                b64 = s[i + 1:j].replace(",", "/")
                b64 += "=" * (-len(b64) % 4)
                out.append(base64.b64decode(b64).decode("utf-16-be"))
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _date(n):
    base = datetime.datetime(2024, 3, 1, 9, 0, 0, tzinfo=datetime.timezone.utc)
    return base + datetime.timedelta(hours=7 * n, minutes=13 * n, seconds=n)


def _filler(rng, lines, width=72):
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
             "tempor incididunt ut labore et dolore magna aliqua mailfs imap fuse").split()
    out = []
    for _ in range(lines):
        line, n = [], 0
        while n < width:
            w = rng.choice(words)
            line.append(w)
            n += len(w) + 1
        out.append(" ".join(line))
    return "\r\n".join(out) + "\r\n"


def _msg(n, subject, body, extra_headers="", ctype="text/plain; charset=us-ascii",
         cte="7bit", frm="Alice Example <alice@example.org>"):
    hdr = [f"From: {frm}", "To: Bob Example <bob@example.org>"]
    if subject is not None:
        hdr.append(f"Subject: {subject}")
    hdr += [f"Date: {_date(n).strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            f"Message-ID: <corpus-{n}@mailfs.test>",
            "MIME-Version: 1.0",
            f"Content-Type: {ctype}",
            f"Content-Transfer-Encoding: {cte}"]
    head = "\r\n".join(hdr) + "\r\n"
    if extra_headers:
        head += extra_headers
    if isinstance(body, str):
        body = body.encode("utf-8")
    return head.encode("utf-8") + b"\r\n" + body


def _multipart(n, subject, rng, attachment_size):
    boundary = f"=-=-=mailfs-{n}-=-=-="
    payload = bytes(rng.getrandbits(8) for _ in range(min(attachment_size, 4096)))
    payload = (payload * (attachment_size // len(payload) + 1))[:attachment_size]
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    body = (f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "Anbei die Datei. Grüße!\r\n\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream; name=\"data-{n}.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"data-{n}.bin\"\r\n\r\n").encode()
    body += b64 + f"\r\n--{boundary}--\r\n".encode()
    return _msg(n, subject, body, ctype=f"multipart/mixed; boundary=\"{boundary}\"")


def build(include_pyemail=True):
    """The corpus: a list of (folder, message bytes, internaldate, flags)."""
    rng = random.Random(20261126)
    msgs = []
    n = 0

    def add(folder, data, flags=()):
        nonlocal n
        msgs.append((folder, data, _date(n), tuple(flags)))
        n += 1

    # INBOX: subjects of every kind.
    subjects = [
        "Meeting notes for Tuesday",
        "Re: Fwd: Quarterly numbers",
        "=?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=",          # Grüße aus München
        "=?UTF-8?Q?Caf=C3=A9_cr=C3=A8me?=",                    # Café crème
        "=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=",                # Grüße aus Köln
        "=?ISO-2022-JP?B?GyRCJEskWyRzGyhC?=",                   # にほん
        "Path/with/slashes and spaces",
        "   leading and trailing   ",
        "Punctuation!? (really) [yes] {no} #1 $2 %3 ^&*",
        "Long " + "subject " * 20,
        "Tabs\tand\tfolded\r\n continuation line",
        "Emoji 🎉 party",
    ]
    for s in subjects:
        add("INBOX", _msg(n, s, _filler(rng, 12)))
    add("INBOX", _msg(n, None, "This message has no Subject header.\r\n"))
    for _ in range(8):
        add("INBOX", _msg(n, "Weekly report", _filler(rng, 5)), flags=("\\Seen",))
    add("INBOX", _msg(n, "8-bit body", "Umlaute: äöüß — « guillemets » — 日本語\r\n".encode("utf-8"),
                      ctype="text/plain; charset=utf-8", cte="8bit"))
    add("INBOX", _msg(n, "Very long lines", ("x" * 20000 + "\r\n") * 3))
    add("INBOX", _msg(n, "Dots at line starts",
                      ".\r\n..\r\n.hidden line\r\n. \r\nend.\r\n"))
    add("INBOX", _multipart(n, "Small attachment", rng, 40 * 1024), flags=("\\Flagged",))
    add("INBOX", _multipart(n, "Big attachment over 5 MB", rng, 5 * 1024 * 1024 + 12345))

    add("Archive", _msg(n, "Archived one", _filler(rng, 30)), flags=("\\Seen",))
    add("Archive/2024", _msg(n, "Archived two", _filler(rng, 30)), flags=("\\Seen", "$Work"))
    for i in range(3):
        add("Archive/2024/Q1", _msg(n, f"Deep message {i}", _filler(rng, 8)))
    add("Entwürfe", _msg(n, "=?UTF-8?Q?Entwurf_f=C3=BCr_Montag?=", _filler(rng, 4)),
        flags=("\\Draft",))
    add("Отправленные", _msg(n, "=?UTF-8?B?0J/RgNC40LLQtdGC?=", _filler(rng, 4)),
        flags=("\\Seen",))
    add("Project X", _msg(n, "Kick-off", _filler(rng, 6)))
    add("Lists/debian", _msg(n, "[debian-devel] Bits from the DPL", _filler(rng, 20),
                             frm="DPL <leader@debian.org>"))
    add("Sent", _msg(n, "Re: Meeting notes for Tuesday", _filler(rng, 3)), flags=("\\Seen",))

    if include_pyemail:
        for path in sorted(glob.glob(os.path.join(PYEMAIL_DIR, "msg_*.txt"))):
            with open(path, "rb") as f:
                raw = f.read()
            # Servers store CRLF; bare LF from the files is turned into CRLF.
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            add("PyEmail", raw)
    return msgs


def seed(client, messages=None, folders=FOLDERS):
    """Create the folders and APPEND every message through an imaplib client."""
    for f in folders:
        if f != "INBOX":
            typ, data = client.create(_q(mutf7_encode(f)))
            if typ != "OK":
                raise RuntimeError(f"CREATE {f}: {data}")
    for folder, data, date, flags in (messages if messages is not None else build()):
        typ, resp = client.append(_q(mutf7_encode(folder)), "(" + " ".join(flags) + ")",
                                  imaplib.Time2Internaldate(date), data)
        if typ != "OK":
            raise RuntimeError(f"APPEND to {folder}: {resp}")


def _q(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
