# SPDX-License-Identifier: GPL-2.0-or-later
"""A hostile IMAP responder for whole mounts. Standard library only.

hostile.py plays a fixed script, which fits the command-line probe: it sends
a known sequence of commands. A mount does not: what it sends depends on what
the test does (which folders it walks, which files it reads, in which chunks),
so this server is a loop that reads one tagged command at a time and answers
it from a table keyed by the command word, over a small model of mailboxes
whose content the test makes hostile:

    srv = Responder(
        folders=[b'* LIST () "/" ..'],          # raw LIST lines, CRLF added
        mailboxes={b"INBOX": [Message(1, b"Subject: hi\\r\\n\\r\\nbody\\r\\n")]},
        ok_text={"EXAMINE": "[XFOO bar baz] done"},
    )
    with srv:
        ... mount imap://tester@127.0.0.1:{srv.port} with tls=none ...
    srv.examined, srv.lines, srv.errors ...

Plain TCP only (the mount runs with tls=none). Every connection the client
opens is served (the pool may open a second one when the first dies), each
in its own thread; the with block's end stops them all within a fraction of
a second and closes every socket.

Commands answered by default:
    CAPABILITY, LOGIN, AUTHENTICATE (one line, SASL-IR), ID, ENABLE, NOOP,
    LIST (the raw lines of `folders`), EXAMINE/SELECT (the mailbox named, by
    its decoded bytes; unknown names are empty mailboxes),
    UID FETCH set (... BODY.PEEK[]<o.l> ...): the message's `body` bytes in
    that range; UID FETCH set (BODYSTRUCTURE): the message's `structure` bytes
    as they are (default: one text/plain part of the body's length);
    UID FETCH set (BODY.PEEK[section]<o.l>) or BINARY.PEEK (a part number,
    HEADER or TEXT): the body's first 1000 bytes in that range, whatever the
    section; UID FETCH set (other items): the listing, with each message's
    `size` as RFC822.SIZE (default: the true length), LOGOUT (BYE, then close);
    anything else: "{tag} OK done".
Hooks for hostile content:
    ok_text[word]      text of the tagged OK for that command word
    before[word]       raw bytes sent before the answer to that command word
    after_listing      raw bytes sent after a listing's FETCH lines
    after_body[uid]    raw bytes sent after the body FETCH of that UID
    handlers[word]     fn(server, conn, tag, args) -> bytes: the whole answer
                       (hang_up: close the connection instead)
Words are upper case; "UID FETCH" and the like are two words.
"""

import re
import time

from hostile import ClientGone, ConnectionServer, Link, Stopped

MAX_LITERAL = 1 << 20  # client literals larger than this end the connection
IDLE_LIMIT = 120        # a connection with no command for this long is closed


class Message:
    """One message: what the server says of it, and the bytes it sends."""

    def __init__(self, uid, body, size=None, subject="hello", flags="",
                 date="01-Mar-2024 09:00:00 +0000", structure=None):
        self.uid = uid
        self.body = body if isinstance(body, bytes) else body.encode()
        self.size = len(self.body) if size is None else size
        self.subject = subject
        self.flags = flags
        self.date = date
        self.structure = structure or (
            b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" %d %d)'
            % (len(self.body), self.body.count(b"\n")))


def make_body(subject, length):
    """A message of exactly length bytes (at least the header's), CRLF lines."""
    head = f"Subject: {subject}\r\nFrom: a@example.org\r\n\r\n".encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrs\r\n"
    fill = (line * (length // len(line) + 1))[:max(0, length - len(head))]
    return head + fill


def quote(name):
    """An IMAP astring for raw name bytes: quoted, or a literal when it must be."""
    if any(b in b"\r\n\0" or b > 0x7e for b in name):
        return b"{%d}\r\n" % len(name) + name
    return b'"' + name.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def parse_astring(data):
    """(value, rest) of the astring at the start of data (a literal is inline)."""
    data = data.lstrip(b" ")
    if data.startswith(b'"'):
        out, i = bytearray(), 1
        while i < len(data) and data[i:i + 1] != b'"':
            if data[i:i + 1] == b"\\":
                i += 1
            out += data[i:i + 1]
            i += 1
        return bytes(out), data[i + 1:]
    m = re.match(rb"\{(\d+)\+?\}\r\n", data)
    if m:
        n = int(m.group(1))
        start = m.end()
        return data[start:start + n], data[start + n:]
    word, _, rest = data.partition(b" ")
    return word, b" " + rest if rest else b""


def uid_set(spec, uids):
    """The UIDs of uids that the sequence set spec names (uids: all known)."""
    top = max(uids) if uids else 0
    chosen = set()
    for part in spec.split(b","):
        lo, _, hi = part.partition(b":")
        lo = top if lo == b"*" else int(lo)
        hi = lo if not hi else (top if hi == b"*" else int(hi))
        lo, hi = min(lo, hi), max(lo, hi)
        chosen.update(u for u in uids if lo <= u <= hi)
    return sorted(chosen)


class Conn:
    """One client connection: its link, and the mailbox it has open."""

    idle_limit = IDLE_LIMIT
    max_literal = MAX_LITERAL

    def __init__(self, server, sock, index):
        self.link = Link(server, sock)
        self.index = index
        self.mailbox = None
        self.closed = False

    def send(self, data):
        self.link.send(data)

    def read_exact(self, n, deadline):
        while len(self.link.buf) < n:
            if time.monotonic() > deadline:
                raise ClientGone("literal not sent in time")
            data = self.link.recv_some()
            if data == b"":
                raise ClientGone("EOF")
            if data:
                self.link.buf += data
        out, self.link.buf = self.link.buf[:n], self.link.buf[n:]
        return out

    def read_command(self):
        """One whole command (client literals inline, CRLF kept before them)."""
        line = self.link.readline(timeout=self.idle_limit)
        while True:
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if not m:
                return line
            n = int(m.group(1))
            if n > self.max_literal:
                raise ClientGone("client literal too large")
            if not m.group(2):
                self.send(b"+ go on\r\n")
            line += b"\r\n" + self.read_exact(n, time.monotonic() + 15)
            line += self.link.readline(timeout=15)


class CommandLoop(ConnectionServer):
    """Each connection: the greeting, then commands read (self.conn_class's
    read_command), recorded in self.lines and handed to self._dispatch
    until the connection closes. A bug in the server shows in self.errors."""

    conn_class = Conn

    def _serve(self, sock, index):
        conn = self.conn_class(self, sock, index)
        try:
            conn.send(self.greeting.encode() if isinstance(self.greeting, str)
                      else self.greeting)
            while not conn.closed:
                line = conn.read_command()
                with self._lock:
                    self.lines.append((index, line))
                self._dispatch(conn, line)
        except (ClientGone, Stopped):
            pass
        except Exception as e:  # a bug in the server must show in the test
            self.errors.append(f"connection {index}: {type(e).__name__}: {e}")
        finally:
            try:
                sock.close()
            except OSError:
                pass


class Responder(CommandLoop):
    """Serve every connection on 127.0.0.1:port from the table and the model."""

    thread_prefix = "hostile-imapd"

    def __init__(self, folders=(), mailboxes=None, caps="IMAP4rev1 AUTH=PLAIN SASL-IR ID",
                 greeting=None, ok_text=None, before=None, after_listing=b"",
                 after_body=None, handlers=None, uidvalidity=7, max_conns=4):
        self.folders = [f if isinstance(f, bytes) else f.encode() for f in folders]
        self.mailboxes = dict(mailboxes or {})
        self.caps = caps
        self.greeting = greeting or f"* OK [CAPABILITY {caps}] hostile responder ready\r\n"
        self.ok_text = dict(ok_text or {})
        for word in ("LOGIN", "AUTHENTICATE"):
            self.ok_text.setdefault(word, f"[CAPABILITY {caps}] logged in")
        self.before = dict(before or {})
        self.after_listing = after_listing
        self.after_body = dict(after_body or {})
        self.handlers = dict(handlers or {})
        self.uidvalidity = uidvalidity
        super().__init__(max_conns)
        self.lines = []       # (connection index, raw command) in arrival order
        self.examined = []    # mailbox names as the client sent them (decoded bytes)
        self.body_fetches = []  # (uid, offset, length) asked for

    # -- one connection --

    # -- commands --

    def _dispatch(self, conn, line):
        parts = line.split(b" ", 2)
        tag = parts[0]
        word = parts[1].decode("latin-1").upper() if len(parts) > 1 else ""
        args = parts[2] if len(parts) > 2 else b""
        if word == "UID" and args:
            sub, _, args = args.partition(b" ")
            word = "UID " + sub.decode("latin-1").upper()
        out = self.before.get(word, b"")
        if word in self.handlers:
            out += self.handlers[word](self, conn, tag, args)
        else:
            fn = getattr(self, "do_" + word.replace(" ", "_").lower(), None)
            out += fn(conn, tag, args) if fn else b""
            out += b"%s OK %s\r\n" % (tag, self.ok_text.get(word, "done").encode())
        conn.send(out)
        if word == "LOGOUT":
            conn.closed = True

    def do_capability(self, conn, tag, args):
        return f"* CAPABILITY {self.caps}\r\n".encode()

    def do_id(self, conn, tag, args):
        return b'* ID ("name" "hostile")\r\n'

    def do_list(self, conn, tag, args):
        return b"".join(f + b"\r\n" for f in self.folders)

    def do_examine(self, conn, tag, args):
        name, _ = parse_astring(args)
        self.examined.append(name)
        conn.mailbox = name
        msgs = self.mailboxes.get(name, [])
        top = max((m.uid for m in msgs), default=0)
        return (b"* FLAGS (\\Seen \\Flagged)\r\n* %d EXISTS\r\n"
                b"* OK [UIDVALIDITY %d] ok\r\n* OK [UIDNEXT %d] ok\r\n"
                % (len(msgs), self.uidvalidity, top + 1))

    do_select = do_examine

    def do_logout(self, conn, tag, args):
        return b"* BYE see you\r\n"

    def do_uid_fetch(self, conn, tag, args):
        spec, _, items = args.partition(b" ")
        msgs = self.mailboxes.get(conn.mailbox, [])
        by_uid = {m.uid: (seq, m) for seq, m in enumerate(msgs, 1)}
        uids = uid_set(spec, list(by_uid))
        body = re.search(rb"BODY\.PEEK\[\](?:<(\d+)\.(\d+)>)?", items)
        part = re.search(rb"(BODY|BINARY)\.PEEK\[((?:\d+\.)*\d+(?:\.(?:HEADER|MIME|TEXT))?"
                         rb"|HEADER|TEXT)\](?:<(\d+)\.(\d+)>)?", items)
        out = b""
        for uid in uids:
            seq, m = by_uid[uid]
            if b"BODYSTRUCTURE" in items:
                out += b"* %d FETCH (UID %d BODYSTRUCTURE %s)\r\n" % (seq, uid, m.structure)
            elif part:
                kind, section, off, length = part.groups()
                chunk = m.body[:1000][int(off or 0):][:int(length or 1000)]
                origin = b"<%s>" % off if off else b""
                out += b"* %d FETCH (UID %d %s[%s]%s {%d}\r\n%s)\r\n" % (
                    seq, uid, kind, section, origin, len(chunk), chunk)
            elif body:
                off = int(body.group(1) or 0)
                length = int(body.group(2)) if body.group(2) else len(m.body)
                self.body_fetches.append((uid, off, length))
                chunk = m.body[off:off + length]
                origin = b"<%d>" % off if body.group(1) else b""
                out += b"* %d FETCH (UID %d BODY[]%s {%d}\r\n%s)\r\n" % (
                    seq, uid, origin, len(chunk), chunk)
                out += self.after_body.get(uid, b"")
            else:
                head = f"Subject: {m.subject}\r\n\r\n".encode()
                out += (b'* %d FETCH (UID %d RFC822.SIZE %d INTERNALDATE "%s" FLAGS (%s) '
                        b"BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n%s)\r\n" % (
                            seq, uid, m.size, m.date.encode(), m.flags.encode(),
                            len(head), head))
        if not body and not part and b"BODYSTRUCTURE" not in items:
            out += self.after_listing
        return out

    def commands(self):
        """The command words and arguments seen, tags stripped (for messages)."""
        return [l.split(b" ", 1)[1].decode("latin-1") if b" " in l else "" for _, l in self.lines]


def hang_up(server, conn, tag, args):
    """A handler: close the connection instead of answering."""
    raise ClientGone("hung up by the test")
