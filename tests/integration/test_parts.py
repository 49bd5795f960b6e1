# SPDX-License-Identifier: GPL-2.0-or-later
"""The .parts directories (mailfs(1), PARTS): MOUNT/.parts/FOLDER/MESSAGE/
shows a message's text, html, headers, attachments and parts/ by section.

Every expected value comes from the test's own side: the message bytes the
server holds (imaplib BODY.PEEK[] on a private dovecot of this module, seeded
with messages built with Python's email package), opened with Python's email
package; a message/rfc822 part's bytes from imaplib BODY.PEEK[section]. The
hostile cases script BODYSTRUCTURE answers with hostile_imapd.Responder."""

import base64
import datetime
import email
import email.policy
import email.utils
import os
import quopri
import random
import re
import subprocess
import threading
import time
from email.header import decode_header, make_header
from email.message import Message

import pytest

import corpus
import mailserver
from conftest import Mount, password_file
from hostile_imapd import Message as HostileMessage, Responder, make_body

USER = "alice"
POP3_USER = "bob"
FOLDERS = ["INBOX", "Archive", "Archive/2024"]
RNG = random.Random(20260307)
DATE = datetime.datetime(2024, 3, 1, 9, 0, 0, tzinfo=datetime.timezone.utc)


# -- the corpus, built with the email package --------------------------------------

def blob(n, head=b""):
    return head + RNG.randbytes(n - len(head))


def leaf(ctype, data, cte, disposition=None, **headers):
    """A leaf part of data (bytes) sent with transfer encoding cte."""
    p = Message()
    p["Content-Type"] = ctype
    p["Content-Transfer-Encoding"] = cte
    if disposition:
        p["Content-Disposition"] = disposition
    for k, v in headers.items():
        p[k.replace("_", "-")] = v
    if cte == "base64":
        p.set_payload(base64.encodebytes(data).decode("ascii"))
    elif cte == "quoted-printable":
        # Hard line breaks as line breaks (not =0D): the generator writes CRLF.
        p.set_payload(quopri.encodestring(data.replace(b"\r\n", b"\n")).decode("ascii"))
    else:   # 7bit / 8bit: the bytes as they are (surrogateescape keeps 8-bit)
        p.set_payload(data.decode("ascii", "surrogateescape"))
    return p


def multi(subtype, *children):
    p = Message()
    p["Content-Type"] = f"multipart/{subtype}"
    p.set_boundary(f"=_parts_{RNG.randrange(10**9)}")   # the same bytes each run
    for c in children:
        p.attach(c)
    return p


def rfc822(inner, disposition=None):
    p = Message()
    p["Content-Type"] = "message/rfc822"
    if disposition:
        p["Content-Disposition"] = disposition
    p.attach(inner)
    return p


def top(n, subject, body, frm="Bob Sender <bob@example.org>", **extra):
    """A whole message: the usual headers, then body's own (MIME) headers."""
    m = Message()
    for k, v in (("From", frm), ("To", "Anna <anna@example.org>"), ("Subject", subject),
                 ("Date", email.utils.format_datetime(DATE + datetime.timedelta(hours=n))),
                 ("Message-ID", f"<parts-{n}@mailfs.test>"), ("MIME-Version", "1.0")):
        m[k] = v
    for k, v in extra.items():
        m[k.replace("_", "-")] = v
    for k, v in body.items():
        m[k] = v
    if body.is_multipart():
        for c in body.get_payload():
            m.attach(c)
    else:
        m.set_payload(body._payload)   # as stored: get_payload() would decode 8-bit
    return m.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))


def text(s, charset="utf-8", cte="quoted-printable", **kw):
    return leaf(f"text/plain; charset={charset}", s.encode(charset), cte, **kw)


HTML = ("<html><head><title>Nope title</title><style>p {color: hotpink}</style></head>"
        "<body><h1>Grüße aus Zürich</h1><p>Your <b>newsletter</b> for "
        "March&nbsp;2024 &amp; more.</p><script>var hidden = 1;</script>"
        "<ul><li>First item</li><li>Second item</li></ul></body></html>\r\n")
RECHNUNG = "Rechnung März.pdf"
UEBERSICHT = "Übersicht 2024.xlsx"


def inbox_messages():
    """(name id, bytes) of INBOX in UID order."""
    inner = top(40, "=?UTF-8?B?VXJzcHLDvG5nbGljaGUgTmFjaHJpY2h0?=", multi(
        "mixed", text("Original text from last week.\r\n"),
        leaf("image/png", blob(3000, b"\x89PNG\r\n\x1a\n"), "base64",
             'attachment; filename="chart.png"')))
    return [
        ("invoice", top(1, "Invoice 42", multi(
            "mixed", text("Hello Anna,\r\nplease find the invoice attached.\r\nGrüße, Bob\r\n"),
            leaf("application/pdf", blob(40000, b"%PDF-1.4\n"), "base64",
                 'attachment; filename="invoice.pdf"')))),
        ("twins", top(2, "Quarterly report", multi(
            "mixed",
            multi("alternative", text("The report, twice.\r\n", "us-ascii", "7bit"),
                  leaf("text/html; charset=utf-8",
                       b"<p>The <i>report</i>, twice. \xe2\x9c\x93</p>\r\n", "quoted-printable")),
            leaf("application/pdf", blob(5000, b"%PDF-1.5\n"), "base64",
                 'attachment; filename="report.pdf"'),
            leaf("application/pdf", blob(7000, b"%PDF-1.7\n"), "base64",
                 'attachment; filename="report.pdf"')))),
        ("html-only", top(3, "=?ISO-8859-1?Q?Gr=FC=DFe?= newsletter", leaf(
            "text/html; charset=iso-8859-1", HTML.encode("iso-8859-1"), "quoted-printable"))),
        ("forward", top(4, "Fwd: the original", multi(
            "mixed", text("See the message below.\r\n", "us-ascii", "7bit"),
            rfc822(email.message_from_bytes(inner), 'attachment; filename="original.eml"')))),
        ("rfc2231", top(5, "Rechnung", multi(
            "mixed", text("Anbei die Rechnung.\r\n"),
            leaf("application/pdf", blob(9000, b"%PDF-1.4\n"), "base64",
                 "attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"),
            leaf('application/vnd.ms-excel; name="=?UTF-8?B?w5xiZXJzaWNodCAyMDI0Lnhsc3g=?="',
                 blob(4000, b"PK\x03\x04"), "base64")))),
        ("koi8-r", top(6, "=?KOI8-R?B?8NLJ18XU?=", text(
            "Привет, мир!\r\nСчёт во вложении.\r\n", "koi8-r", "8bit"))),
        ("shift_jis", top(7, "Japanese", text(
            "こんにちは世界\r\n請求書を添付します。\r\n", "shift_jis", "base64"))),
        ("windows-1252", top(8, "Quotes", text(
            "“Smart quotes” cost 5 € – naïve café\r\nline two\r\n",
            "windows-1252", "quoted-printable"))),
        ("latin1-two-texts", top(9, "Two texts", multi(
            "mixed", text("Bjørn's Grüße: Straße\r\n", "iso-8859-1", "base64"),
            text("Второй текст\r\n", "koi8-r", "8bit")))),
        ("plain", top(10, "Plain note", text("Just one part.\r\nSecond line.\r\n\r\n", "us-ascii",
                                             "7bit"),
                      frm="=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>",
                      X_Long="a header value long enough\r\n\tto be folded onto two lines")),
        ("no-filename", top(11, "Unnamed", multi(
            "mixed", text("Two attachments, one without a name.\r\n"),
            leaf("application/octet-stream", blob(2500), "base64", "attachment"),
            leaf("application/octet-stream", blob(1500), "base64",
                 'attachment; filename="text"')))),
    ]


INBOX = inbox_messages()
BIG_PART, BIG_REST = 2 * 1024 * 1024, 6 * 1024 * 1024


def big_message():
    return top(50, "Big one", multi(
        "mixed", text("Two big attachments.\r\n"),
        leaf("application/octet-stream", blob(BIG_PART), "base64",
             'attachment; filename="two-mb.bin"'),
        leaf("application/octet-stream", blob(BIG_REST), "base64",
             'attachment; filename="rest.bin"')))


@pytest.fixture(scope="module")
def server(workdir):
    """A dovecot of this module's own: USER's INBOX holds the messages of
    INBOX (UIDs in that order), Archive the plain one, Archive/2024 the big one."""
    s = mailserver.Dovecot(os.path.join(workdir, "dovecot-parts"))
    s.start()
    try:
        msgs = [("INBOX", data, DATE, ()) for _, data in INBOX]
        msgs += [("Archive", INBOX[9][1], DATE, ()), ("Archive/2024", big_message(), DATE, ())]
        with s.imaps(USER) as c:
            corpus.seed(c, msgs, folders=FOLDERS)
        yield s
    finally:
        s.stop()


def imap_fetch(server, folder, uid, item):
    """The bytes of BODY.PEEK[item] of one message, as the server sends them."""
    with server.imaps(USER) as c:
        assert c.select(corpus._q(folder), readonly=True)[0] == "OK"
        typ, data = c.uid("FETCH", str(uid), f"(BODY.PEEK[{item}])")
    assert typ == "OK", data
    return [d[1] for d in data if isinstance(d, tuple)][0]


# -- the expected view, from Python's email package ---------------------------------

def own_parts(msg, prefix=""):
    """[(section, part)] of msg's own parts, depth first: leaves and
    message/rfc822 parts (not what is inside those); RFC 3501 numbers."""
    if msg.get_content_maintype() != "multipart":
        return [(prefix + "1", msg)]
    out = []
    for i, child in enumerate(msg.get_payload(), 1):
        sec = f"{prefix}{i}"
        if child.get_content_maintype() == "multipart":
            out += own_parts(child, sec + ".")
        else:
            out.append((sec, child))
    return out


def filename(part):
    name = part.get_filename()   # RFC 2231 decoded; falls back to Content-Type name
    if name is None:
        return None
    return str(make_header(decode_header(name)))


def is_attachment(part):
    return part.get_content_disposition() == "attachment" or filename(part) is not None


def with_suffix(name, n):
    stem, dot, ext = name.rpartition(".")
    return f"{stem}~{n}.{ext}" if dot and stem else f"{name}~{n}"


def expected_view(msg, prefix=""):
    """{name: (kind, section, part)} of a message directory."""
    own = own_parts(msg, prefix)
    view = {}
    for kind, subtype in (("text", "plain"), ("html", "html")):
        for sec, p in own:
            if p.get_content_type() == f"text/{subtype}" and not is_attachment(p):
                view[kind] = (kind, sec, p)
                break
    if "text" not in view and "html" in view:
        view["text"] = ("html-as-text",) + view["html"][1:]
    view["headers"] = ("headers", prefix + "HEADER", msg)
    chosen = {v[1] for v in view.values()}
    for sec, p in own:
        if sec in chosen or not is_attachment(p):
            continue
        name = filename(p)
        name = re.split(r"[/\\]", name)[-1] if name else f"part-{sec}"
        base, n = name, 1
        while name in view or name == "parts":
            n += 1
            name = with_suffix(base, n)
        view[name] = ("attachment", sec, p)
    view["parts"] = ("parts", prefix, msg)
    return view


def as_utf8_text(part):
    raw = part.get_payload(decode=True)
    t = raw.decode(part.get_content_charset() or "utf-8", "replace")
    return t.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "").encode()


def header_lines(msg):
    """Each field "Name: value", unfolded, RFC 2047 decoded, spaces collapsed."""
    out = []
    for k, v in msg.items():
        value = str(make_header(decode_header(re.sub(r"\r?\n(?=[ \t])", "", v))))
        out.append(" ".join(f"{k}: {value}".split()))
    return out


# -- the mount side --------------------------------------------------------------------

def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout,
                          env=dict(os.environ, LC_ALL="C"), **kw)


def mount_parts(mount, server, workdir, user=USER, **options):
    opts = {"ca_file": server.ca, "password_file": password_file(workdir, server, user)}
    opts.update(options)
    return mount(user=user, source=server.url(user), options=opts)


def counters(mnt):
    out = run(["getfattr", "--only-values", "-n", "user.mailfs.status", mnt]).stdout.decode()
    st = dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)
    return {k: int(st.get(k, 0)) for k in ("messages_fetched", "bytes_fetched",
                                           "prefetched_bytes", "commands_sent",
                                           "structures_fetched", "parts_fetched")}


def message_dirs(mnt, folder):
    """{uid: the message's directory name under .parts/folder}: its file name
    in folder without ".eml"."""
    out = {}
    for n in os.listdir(os.path.join(mnt, folder)):
        m = re.match(r"(\d+)-.*\.eml$|(\d+)\.eml$", n)
        if m:
            out[int(m.group(1) or m.group(2))] = n[:-len(".eml")]
    return out


def xattr(path, name):
    return os.getxattr(path, name).decode()


def read_checked(path):
    """The file's bytes; stat tells exactly that many (at the latest a moment
    after the first read, as for message files whose size was a hint)."""
    with open(path, "rb") as f:
        data = f.read()
    deadline = time.monotonic() + 5
    while os.stat(path).st_size != len(data) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.stat(path).st_size == len(data), f"{path}: stat is not the {len(data)} bytes read"
    return data


def check_part_attrs(path, sec, part):
    assert xattr(path, "user.mime.section") == sec, path
    assert xattr(path, "user.mime.type") == part.get_content_type(), path
    assert xattr(path, "user.mime.encoding") == \
        part.get("Content-Transfer-Encoding", "7bit").strip().lower(), path
    if part.get_content_maintype() == "text":
        assert xattr(path, "user.mime.charset").lower() == part.get_content_charset(), path


def check_message_dir(d, msg, prefix, section_bytes):
    """Everything of one message directory against msg (a top-level message,
    or the message inside the message/rfc822 part prefix[:-1]).
    section_bytes(sec): the server's BODY[sec] (for message/rfc822 parts)."""
    view = expected_view(msg, prefix)
    assert sorted(os.listdir(d)) == sorted(view), d
    for name, (kind, sec, part) in view.items():
        path = os.path.join(d, name)
        if kind == "parts":
            check_parts_dir(path, msg, prefix, section_bytes)
            continue
        data = read_checked(path)
        assert xattr(path, "user.mime.section") == sec, path
        if kind == "headers":
            got = [" ".join(l.split()) for l in data.decode().split("\n") if l]
            assert got == header_lines(part), path
            assert data.endswith(b"\n") and b"\r" not in data
        elif kind == "text":
            assert data == as_utf8_text(part), path
            assert data.decode("utf-8").strip(), path
        elif kind == "html-as-text":
            t = data.decode("utf-8")
            for word in ("Grüße aus Zürich", "newsletter", "March", "& more", "First item",
                         "Second item"):
                assert word in t, (path, t)
            for absent in ("<", "hotpink", "hidden", "Nope title", "&amp;"):
                assert absent not in t, (path, t)
        elif part.get_content_type() == "message/rfc822":
            assert data == section_bytes(sec), path
            check_part_attrs(path, sec, part)
        else:   # html, attachment
            assert data == part.get_payload(decode=True), path
            check_part_attrs(path, sec, part)


def check_parts_dir(d, msg, prefix, section_bytes):
    own = own_parts(msg, prefix)
    assert sorted(os.listdir(d)) == sorted(sec for sec, _ in own), d
    for sec, part in own:
        path = os.path.join(d, sec)
        if part.get_content_type() == "message/rfc822":
            assert os.path.isdir(path), path
            check_message_dir(path, part.get_payload(0), sec + ".", section_bytes)
        else:
            assert read_checked(path) == part.get_payload(decode=True), path
            check_part_attrs(path, sec, part)


# -- the expected side checks itself against the server ------------------------------

def test_expected_sections_are_the_servers(server):
    """Python's section numbers name the server's parts: each leaf's BODY[sec]
    transfer-decoded is Python's payload, each message/rfc822 part's
    BODY[sec.HEADER] is its header; a structure that does not only guard
    this file's expectations (no mailfs here)."""
    for uid, (ident, data) in enumerate(INBOX, 1):
        msg = email.message_from_bytes(imap_fetch(server, "INBOX", uid, ""))
        assert msg.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n")) == data
        todo = [("", msg)]
        while todo:
            prefix, m = todo.pop()
            for sec, part in own_parts(m, prefix):
                if part.get_content_type() == "message/rfc822":
                    inner = part.get_payload(0)
                    head = imap_fetch(server, "INBOX", uid, sec + ".HEADER")
                    assert email.message_from_bytes(head).items() == inner.items(), ident
                    todo.append((sec + ".", inner))
                    continue
                raw = imap_fetch(server, "INBOX", uid, sec)
                cte = part.get("Content-Transfer-Encoding", "7bit").lower()
                dec = {"base64": base64.b64decode, "quoted-printable": quopri.decodestring}
                assert dec.get(cte, bytes)(raw) == part.get_payload(decode=True), (ident, sec)
    views = {i: expected_view(email.message_from_bytes(d)) for i, d in INBOX}
    assert sorted(views["twins"]) == ["headers", "html", "parts", "report.pdf", "report~2.pdf",
                                      "text"]
    assert {RECHNUNG, UEBERSICHT} < set(views["rfc2231"])
    assert {"part-2", "text~2"} < set(views["no-filename"])
    assert views["html-only"]["text"][0] == "html-as-text"
    assert [s for s, _ in own_parts(email.message_from_bytes(INBOX[9][1]))] == ["1"]


# -- every message of INBOX ------------------------------------------------------------

@pytest.mark.parametrize("index", range(len(INBOX)), ids=[i for i, _ in INBOX])
def test_message_directory(mount, server, workdir, index):
    uid = index + 1
    msg = email.message_from_bytes(imap_fetch(server, "INBOX", uid, ""))
    m = mount_parts(mount, server, workdir)
    d = os.path.join(m.mountpoint, ".parts", "INBOX", message_dirs(m.mountpoint, "INBOX")[uid])
    assert os.path.isdir(d)
    check_message_dir(d, msg, "", lambda sec: imap_fetch(server, "INBOX", uid, sec))
    r = run(["getfattr", "-n", "user.mime.section", "--only-values", os.path.join(d, "headers")])
    assert r.returncode == 0 and r.stdout == b"HEADER", r.stderr


def test_parts_is_looked_up_but_never_listed(mount, server, workdir, tmp_path):
    m = mount_parts(mount, server, workdir)
    mnt = m.mountpoint
    assert os.path.isdir(os.path.join(mnt, ".parts"))
    ls = run(["ls", "-a", mnt]).stdout.decode().split()
    assert ".parts" not in ls and "INBOX" in ls, ls
    assert ".parts" not in os.listdir(mnt)
    find = run(["find", mnt])
    assert find.returncode == 0 and b".parts" not in find.stdout, find.stderr
    r = run(["rsync", "-a", mnt + "/", str(tmp_path / "copy") + "/"], timeout=300)
    assert r.returncode == 0, r.stderr
    copied = [os.path.join(dp, n) for dp, ds, fs in os.walk(tmp_path / "copy") for n in ds + fs]
    assert not [p for p in copied if ".parts" in p]
    assert sum(len(fs) for _, _, fs in os.walk(tmp_path / "copy")) == len(INBOX) + 2

    assert run(["ls", os.path.join(mnt, ".parts")]).stdout.decode().split() == \
        ["Archive", "INBOX"]
    inbox = set(os.listdir(os.path.join(mnt, ".parts", "INBOX")))
    assert inbox == set(message_dirs(mnt, "INBOX").values()), inbox
    archive = set(os.listdir(os.path.join(mnt, ".parts", "Archive")))
    assert archive == {"2024"} | set(message_dirs(mnt, "Archive").values()), archive
    assert [n for n in os.listdir(os.path.join(mnt, ".parts", "INBOX"))
            if n.endswith(".eml")] == []
    for name in message_dirs(mnt, "INBOX").values():
        assert os.path.isdir(os.path.join(mnt, ".parts", "INBOX", name))


# -- what it costs ---------------------------------------------------------------------

def test_reading_one_attachment_fetches_only_it(mount, server, workdir, tmp_path):
    """A 2 MiB attachment of an uncached ~11 MB message: one BODYSTRUCTURE to
    open the directory, then that part's bytes only."""
    raw = imap_fetch(server, "Archive/2024", 1, "")
    assert len(raw) > 10_000_000
    msg = email.message_from_bytes(raw)
    part = [p for _, p in own_parts(msg) if p.get_filename() == "two-mb.bin"][0]
    encoded = len(imap_fetch(server, "Archive/2024", 1, "2"))
    assert encoded > 2_700_000
    m = mount_parts(mount, server, workdir, prefetch=0, refresh=3600)
    mnt = m.mountpoint
    d = os.path.join(mnt, ".parts", "Archive", "2024", message_dirs(mnt, "Archive/2024")[1])
    before = counters(mnt)
    assert sorted(os.listdir(d)) == ["headers", "parts", "rest.bin", "text", "two-mb.bin"]
    opened = counters(mnt)
    assert opened["bytes_fetched"] - before["bytes_fetched"] < 64 * 1024, (before, opened)
    # One BODYSTRUCTURE (with its EXAMINE; a check of an idle session may
    # add a NOOP, so commands are not counted), no part, no body.
    assert opened["structures_fetched"] - before["structures_fetched"] == 1, (before, opened)
    assert opened["parts_fetched"] == before["parts_fetched"], (before, opened)
    assert opened["messages_fetched"] == before["messages_fetched"], (before, opened)
    dest = tmp_path / "two-mb.bin"
    r = run(["cp", os.path.join(d, "two-mb.bin"), str(dest)])
    assert r.returncode == 0, r.stderr
    after = counters(mnt)
    assert after["parts_fetched"] - opened["parts_fetched"] == 1, (opened, after)
    grew = (after["bytes_fetched"] + after["prefetched_bytes"]
            - opened["bytes_fetched"] - opened["prefetched_bytes"])
    # BODY[2] is ~2.8 MB encoded, BINARY[2] 2 MiB: either, never the message.
    assert BIG_PART <= grew < 4_000_000 and grew < len(raw) / 2, (grew, len(raw))
    assert dest.read_bytes() == part.get_payload(decode=True)
    assert os.stat(os.path.join(d, "two-mb.bin")).st_size == BIG_PART


def test_cached_message_is_opened_locally(mount, server, workdir):
    """After `cat INBOX/x.eml`, its .parts directory is made from the cache:
    listing and reading every part fetches nothing."""
    m = mount_parts(mount, server, workdir, prefetch=0)
    mnt = m.mountpoint
    names = message_dirs(mnt, "INBOX")
    for uid, name in names.items():
        cat = run(["cat", os.path.join(mnt, "INBOX", name + ".eml")])
        assert cat.returncode == 0 and cat.stdout == INBOX[uid - 1][1]
    before = counters(mnt)
    for uid, name in names.items():
        msg = email.message_from_bytes(INBOX[uid - 1][1])
        check_message_dir(os.path.join(mnt, ".parts", "INBOX", name), msg, "",
                          lambda sec, uid=uid: imap_fetch(server, "INBOX", uid, sec))
    after = counters(mnt)
    assert (after["bytes_fetched"], after["messages_fetched"]) == \
        (before["bytes_fetched"], before["messages_fetched"]), (before, after)


def test_structures_outlive_a_remount(mount, server, workdir):
    """A structure fetched once is kept in the cache: after a remount the
    message's directory lists with no BODYSTRUCTURE sent and nothing fetched."""
    m = mount_parts(mount, server, workdir, prefetch=0)
    names = message_dirs(m.mountpoint, "INBOX")
    first = os.path.join(".parts", "INBOX", names[1])
    listed = sorted(os.listdir(os.path.join(m.mountpoint, first)))
    assert counters(m.mountpoint)["structures_fetched"] == 1
    m.unmount()
    again = mount_parts(mount, server, workdir, prefetch=0)
    assert sorted(os.listdir(os.path.join(again.mountpoint, first))) == listed
    assert counters(again.mountpoint)["structures_fetched"] == 0
    assert counters(again.mountpoint)["bytes_fetched"] == 0


# -- refusals ----------------------------------------------------------------------

def test_parts_is_read_only(mount, server, workdir):
    m = mount_parts(mount, server, workdir)
    mnt = m.mountpoint
    name = message_dirs(mnt, "INBOX")[1]
    d = os.path.join(mnt, ".parts", "INBOX", name)
    pdf = os.path.join(d, "invoice.pdf")
    for cmd in (["mkdir", os.path.join(mnt, ".parts", "New")],
                ["mkdir", os.path.join(mnt, ".parts", "INBOX", "newdir")],
                ["mkdir", os.path.join(d, "newdir")],
                ["touch", os.path.join(d, "new.txt")],
                ["touch", os.path.join(d, "parts", "9")],
                ["rm", "-f", pdf],
                ["rm", "-f", os.path.join(d, "parts", "1")],
                ["rmdir", os.path.join(d, "parts")],
                ["rmdir", d],
                ["mv", pdf, os.path.join(d, "renamed.pdf")],
                ["mv", d, os.path.join(mnt, ".parts", "INBOX", "renamed")],
                ["sh", "-c", 'echo x >> "$1"', "sh", os.path.join(d, "text")],
                ["cp", "/etc/hostname", os.path.join(d, "parts")]):
        r = run(cmd)
        assert r.returncode != 0 and b"Read-only file system" in r.stderr, (cmd, r.stderr)
    with pytest.raises(OSError) as e:
        os.setxattr(pdf, "user.mime.type", b"text/plain")
    assert e.value.errno in (30, 95), e.value   # EROFS (or ENOTSUP)
    assert sorted(os.listdir(d)) == ["headers", "invoice.pdf", "parts", "text"]
    assert xattr(pdf, "user.mime.type") == "application/pdf"
    assert imap_fetch(server, "INBOX", 1, "") == INBOX[0][1]


def test_pop3_view_has_no_parts(mount, server, workdir, tmp_path):
    server.reset_user(POP3_USER)
    with server.imaps(POP3_USER) as c:
        corpus.seed(c, [("INBOX", INBOX[0][1], DATE, ())], folders=["INBOX"])
    m = mount(user=POP3_USER, source=server.url(POP3_USER, "pop3s"),
              options={"ca_file": server.ca,
                       "password_file": password_file(workdir, server, POP3_USER),
                       "pop3_archive": str(tmp_path / "archive")})
    assert ".parts" not in os.listdir(m.mountpoint)
    for p in (".parts", ".parts/INBOX"):
        with pytest.raises(FileNotFoundError):
            os.stat(os.path.join(m.mountpoint, p))


# -- hostile BODYSTRUCTURE answers -------------------------------------------------

LEAF = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)'
PDF = b'("APPLICATION" "PDF" ("NAME" "a.pdf") NIL NIL "BASE64" %d NIL ("ATTACHMENT" NIL) NIL NIL)'
ENVELOPE = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def nested_messages(depth):
    s = LEAF
    for _ in range(depth):
        s = b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 100 %s %s 5)' % (ENVELOPE, s)
    return b'(%s %s "MIXED")' % (LEAF, s)


HOSTILE = {
    "multipart-100-deep": b"(" * 100 + LEAF + b' "MIXED")' * 100,
    "rfc822-100-deep": nested_messages(100),
    "10000-parts": b"(" + LEAF * 10000 + b' "MIXED")',
    "20000-parts": b"(" + LEAF * 20000 + b' "MIXED")',
    "nil-everywhere": b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    "nil-multipart": b"((NIL NIL NIL NIL NIL NIL NIL) (NIL) NIL NIL NIL)",
    "nil-structure": b"NIL",
    "empty-list": b"()",
    "lying-sizes": b"(%s %s %s \"MIXED\")" % (LEAF, PDF % 99999999999999, PDF % 0),
    "negative-size": b"(%s %s \"MIXED\")" % (LEAF, PDF % -5),
    "rfc822-without-body": b'(%s ("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 10 NIL NIL NIL) "MIXED")'
                           % LEAF,
    "garbage-string": b'"not a structure"',
    "garbage-atoms": b"hello world 42",
    "garbage-literal": b"{5}\r\nhello",
    "unbalanced": b'(("TEXT" "PLAIN" (',
    "huge-literal-name": b'("TEXT" "PLAIN" ("NAME" {300000}\r\n' + b"x" * 300000
                         + b') NIL NIL "7BIT" 1 1)',
}


@pytest.fixture
def hostile_password(workdir):
    path = os.path.join(workdir, "hostile-parts.password")
    with open(path, "w") as f:
        f.write("not-a-real-password\n")
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bodystructure(mailfs_bin, workdir, hostile_password, case):
    """No crash, no hang: the message directory lists (bounded) or is EIO;
    the mount still serves the message; a clean exit at unmount."""
    body = make_body("hello", 2000)
    srv = Responder(folders=[b'* LIST () "/" INBOX'],
                    mailboxes={b"INBOX": [HostileMessage(1, body, structure=HOSTILE[case])]})
    with srv:
        opts = {"tls": "none", "password_file": hostile_password, "connections": 1,
                "idle": "no", "timeout": 5, "prefetch": 0,
                "cache_dir": os.path.join(workdir, f"cache-hp-{case}")}
        m = Mount(mailfs_bin, f"imap://tester@127.0.0.1:{srv.port}",
                  os.path.join(workdir, f"mnt-hp-{case}"), opts, workdir)
        m.start()
        try:
            d = os.path.join(m.mountpoint, ".parts", "INBOX", "1-hello")
            top = run(["ls", os.path.join(m.mountpoint, ".parts", "INBOX")], timeout=30)
            assert top.stdout == b"1-hello\n", top
            ls = run(["ls", "-la", d], timeout=30)
            if ls.returncode != 0:
                assert b"Input/output error" in ls.stderr, ls.stderr
            else:
                assert len(ls.stdout.splitlines()) < 10_010, len(ls.stdout)
                find = run(["find", d, "-maxdepth", "12", "-type", "f"], timeout=60)
                for p in find.stdout.decode().splitlines()[:40]:
                    run(["cat", p], timeout=30)   # ends, with data or an error
            with open(os.path.join(m.mountpoint, "INBOX", "1-hello.eml"), "rb") as f:
                assert f.read() == body
        except subprocess.TimeoutExpired as e:
            m.kill()
            pytest.fail(f"{e.cmd} did not finish: mailfs hangs on {case}")
        except BaseException:
            m.kill()
            raise
        m.unmount(allowed=(r"warning:",))
    assert not srv.errors, srv.errors
    assert not [t for t in threading.enumerate() if t.name.startswith("hostile-imapd-")]
