# SPDX-License-Identifier: GPL-2.0-or-later
"""A scripted IMAP server that behaves like Gmail for what mailfs uses.
Standard library only; plain TCP on 127.0.0.1 (mount with tls=none).

Gmail's model (its IMAP extensions, X-GM-EXT-1): one store of messages,
each with a unique X-GM-MSGID, a set of labels and one set of flags. Every
label is a folder; "[Gmail]/All Mail" (\\All) holds every message that is
not in the Trash. A folder gives each message its own UID, in order of
arrival in that folder, under a fixed UIDVALIDITY; a message that leaves a
folder and comes back gets a new UID.

    with GmailServer(labels=("Work", "Receipts")) as srv:
        msgid = srv.add_message(body, labels=("INBOX", "Work"))
        ... mount imap://USER@127.0.0.1:{srv.port} with tls=none ...
        srv.labels_of(msgid)            # {"INBOX", "Work"} (folder names)
        srv.folder_messages("Work")     # {uid: msgid}
        srv.in_trash(msgid), srv.flags_of(msgid), srv.commands(), srv.bad

What the commands do to the store:
    STORE (+/-)FLAGS[.SILENT]  flags are the message's, shown in every folder;
                     except \\Deleted, which is kept per folder entry (an
                     expunge removes that entry only, as on Gmail)
    STORE (+/-)X-GM-LABELS  adds or removes labels (folders) as COPY and
                     EXPUNGE in a label do
    COPY to a label  adds the label (a new UID there; COPYUID answered)
    COPY to All Mail nothing (it is there already; its UID there answered)
    COPY to Trash    Gmail's delete: into the Trash, out of every label
    MOVE L -> M      adds M, removes L (from All Mail: adds M only);
                     MOVE to Trash as COPY to Trash
    EXPUNGE, UID EXPUNGE, CLOSE
                     in a label: removes that label only (the message
                     stays in All Mail and its other labels); in All Mail:
                     the message goes to the Trash; in the Trash: gone
    APPEND           a new message with that folder's label (to All Mail:
                     no label; to the Trash: in the Trash)
    CREATE, DELETE   a user label (DELETE removes it from every message)
Also CAPABILITY, LOGIN, AUTHENTICATE PLAIN (SASL-IR or a continuation),
ID, NOOP, CHECK, LOGOUT, LIST/LSUB (with or without RETURN (SPECIAL-USE)),
STATUS, SELECT, EXAMINE, FETCH / UID FETCH (UID FLAGS RFC822.SIZE
INTERNALDATE X-GM-MSGID X-GM-THRID X-GM-LABELS BODYSTRUCTURE
RFC822.HEADER BODY[.PEEK][section]<o.l> with section empty, HEADER, TEXT,
HEADER.FIELDS[.NOT] (...)), SEARCH / UID SEARCH (ALL, sets, UID set,
LARGER, SMALLER, flag keys, SUBJECT/FROM/TO/HEADER/BODY/TEXT, BEFORE/ON/
SINCE, X-GM-MSGID, NOT, OR, CHARSET). Anything else is answered BAD;
every BAD answer is recorded in `bad` (an unknown command, FETCH item or
search key shows there). No IDLE, no CONDSTORE: mailfs must cope without.

Changes made through one connection show on the others at their next
command (untagged EXPUNGE, EXISTS, FETCH FLAGS), as on a real server.

Standalone, for debugging a mount by hand:
    python3 gmail_imapd.py [--port N]     (prints the URL and password)
"""

import argparse
import base64
import datetime
import itertools
import re
import signal
import threading
import time
import urllib.parse

from hostile import ClientGone, ScriptError
from hostile_imapd import CommandLoop, Conn, quote

CAPS = "IMAP4rev1 X-GM-EXT-1 UIDPLUS MOVE SPECIAL-USE LITERAL+ ID AUTH=PLAIN SASL-IR"
USER = "tester@gmail.test"
PASSWORD = "gmail-Secret-7"
INBOX, ALL_MAIL, TRASH, SENT = "INBOX", "[Gmail]/All Mail", "[Gmail]/Trash", "[Gmail]/Sent Mail"
# Folder: (LIST attributes, the label X-GM-LABELS shows for it).
SYSTEM_FOLDERS = {
    INBOX: ("\\HasNoChildren", "\\Inbox"),
    "[Gmail]": ("\\Noselect \\HasChildren", None),
    ALL_MAIL: ("\\HasNoChildren \\All", None),
    SENT: ("\\HasNoChildren \\Sent", "\\Sent"),
    TRASH: ("\\HasNoChildren \\Trash", "\\Trash"),
}
FLAGS = "\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing"
FIRST_MSGID = 1700000000000000001  # 64-bit ids, as Gmail's are
IDLE_LIMIT = 3600  # a silent connection is closed after this long
MAX_LITERAL = 64 << 20


class ImapError(Exception):
    """A command's failure: the tagged answer is NO or BAD with this text."""

    def __init__(self, kind, text):
        super().__init__(text)
        self.kind = kind


def no(text):
    return ImapError("NO", text)


def bad(text):
    return ImapError("BAD", text)


# -- the store -------------------------------------------------------------------

class Message:
    def __init__(self, msgid, body, date, flags):
        self.msgid = msgid
        self.body = body
        self.date = date  # aware datetime
        self.flags = set(flags) - {"\\Deleted", "\\Recent"}


class Folder:
    def __init__(self, name, attrs, label, uidvalidity):
        self.name = name
        self.attrs = attrs
        self.label = label  # as X-GM-LABELS shows it; None: not a label
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.entries = {}   # uid -> msgid, in arrival order
        self.deleted = set()  # uids with \Deleted (per folder entry)

    @property
    def selectable(self):
        return "\\Noselect" not in self.attrs

    def uid_of(self, msgid):
        for uid, m in self.entries.items():
            if m == msgid:
                return uid
        return None


class Store:
    """Messages and folders; every method is called with the server's lock held."""

    def __init__(self, labels):
        self.folders = {}
        self.messages = {}
        self._ids = itertools.count(FIRST_MSGID)
        self._validity = itertools.count(600001)
        for name, (attrs, label) in SYSTEM_FOLDERS.items():
            self.create(name, attrs, label)
        for name in labels:
            self.create(name)

    def create(self, name, attrs="\\HasNoChildren", label=None):
        if name in self.folders:
            raise no("[ALREADYEXISTS] Folder name conflicts with existing folder name.")
        self.folders[name] = Folder(name, attrs, label if label is not None else name,
                                    next(self._validity))
        if "/" in name:
            parent = name.rsplit("/", 1)[0]
            if parent in self.folders:
                p = self.folders[parent]
                p.attrs = p.attrs.replace("\\HasNoChildren", "\\HasChildren")
        return self.folders[name]

    def folder(self, name):
        if name.upper() == "INBOX":
            name = INBOX
        f = self.folders.get(name)
        if f is None:
            raise no(f"[NONEXISTENT] Unknown Mailbox: {name}")
        return f

    def label_folders(self):
        return [f for f in self.folders.values()
                if f.selectable and f.name not in (ALL_MAIL, TRASH)]

    # Placing a message in a folder, taking it out.
    def place(self, msgid, folder):
        uid = folder.uid_of(msgid)
        if uid is None:
            uid = folder.uidnext
            folder.uidnext += 1
            folder.entries[uid] = msgid
        return uid

    def unplace(self, msgid, folder):
        uid = folder.uid_of(msgid)
        if uid is not None:
            del folder.entries[uid]
            folder.deleted.discard(uid)

    def add(self, body, folder_name, flags=(), date=None):
        folder = self.folder(folder_name)
        if not folder.selectable:
            raise no("[CANNOT] That folder holds no messages.")
        msg = Message(next(self._ids), body,
                      date or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
                      flags)
        self.messages[msg.msgid] = msg
        if folder.name == TRASH:
            self.place(msg.msgid, folder)
        else:
            self.place(msg.msgid, self.folders[ALL_MAIL])
            if folder.name != ALL_MAIL:
                self.place(msg.msgid, folder)
        return msg.msgid

    def in_trash(self, msgid):
        return self.folders[TRASH].uid_of(msgid) is not None

    def labels_of(self, msgid):
        return {f.name for f in self.label_folders() if f.uid_of(msgid) is not None}

    def trash(self, msgid):
        for f in self.folders.values():
            if f.name != TRASH:
                self.unplace(msgid, f)
        return self.place(msgid, self.folders[TRASH])

    def add_label(self, msgid, folder):
        """COPY into folder: its UID there."""
        if folder.name == TRASH:
            return self.trash(msgid)
        if self.in_trash(msgid):  # out of the Trash again
            self.unplace(msgid, self.folders[TRASH])
        self.place(msgid, self.folders[ALL_MAIL])
        return self.place(msgid, folder)

    def expunge_entry(self, msgid, folder):
        if folder.name == TRASH:
            self.unplace(msgid, folder)
            del self.messages[msgid]
        elif folder.name == ALL_MAIL:
            self.trash(msgid)
        else:
            self.unplace(msgid, folder)

    def move(self, msgid, src, dst):
        uid = self.add_label(msgid, dst)
        if dst.name != TRASH and src.name not in (ALL_MAIL, dst.name):
            self.unplace(msgid, src)
        return uid

    def delete_folder(self, name):
        folder = self.folder(name)
        if name in SYSTEM_FOLDERS:
            raise no("[CANNOT] System folders cannot be deleted.")
        del self.folders[name]
        return folder


# -- the protocol's syntax ---------------------------------------------------------

def tokens(data):
    """The arguments of a command as a list: bytes for atoms, quoted strings and
    literals, lists for parenthesised groups. An atom keeps a [section] with its
    blanks and parentheses, and a <partial> (BODY.PEEK[HEADER.FIELDS (A B)]<0.9>)."""
    out, stack, i = [], [], 0
    cur = out
    while i < len(data):
        c = data[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            stack.append(cur)
            cur.append([])
            cur = cur[-1]
            i += 1
        elif c == b")":
            if not stack:
                raise bad("unbalanced parenthesis")
            cur = stack.pop()
            i += 1
        elif c == b'"':
            val, i = bytearray(), i + 1
            while i < len(data) and data[i:i + 1] != b'"':
                if data[i:i + 1] == b"\\":
                    i += 1
                val += data[i:i + 1]
                i += 1
            cur.append(bytes(val))
            i += 1
        elif c == b"{":
            m = re.match(rb"\{(\d+)\+?\}\r\n", data[i:])
            if not m:
                raise bad("bad literal")
            n, start = int(m.group(1)), i + m.end()
            cur.append(data[start:start + n])
            i = start + n
        else:
            j, depth = i, 0
            while j < len(data):
                ch = data[j:j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")"):
                    break
                j += 1
            cur.append(data[i:j])
            i = j
    if stack:
        raise bad("unbalanced parenthesis")
    return out


def astring(text):
    return quote(text.encode() if isinstance(text, str) else text)


def parse_set(spec, known, last):
    """The members of known (sorted numbers) that the set spec names; last is '*'."""
    chosen = set()
    for part in spec.decode().split(","):
        lo, _, hi = part.partition(":")
        try:
            lo = last if lo == "*" else int(lo)
            hi = lo if not hi else (last if hi == "*" else int(hi))
        except ValueError:
            raise bad(f"bad set {spec!r}")
        lo, hi = min(lo, hi), max(lo, hi)
        chosen.update(n for n in known if lo <= n <= hi)
    return sorted(chosen)


def header_block(body):
    end = body.find(b"\r\n\r\n")
    return body if end < 0 else body[:end + 4]


def header_fields(body, names, negate=False):
    """The header lines whose field name is (not) in names, and the blank line."""
    wanted = {n.upper() for n in names}
    out, keep = [], False
    for line in header_block(body).split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("latin-1").upper()
        keep = (name in wanted) != negate
        if keep:
            out.append(line)
    return b"".join(l + b"\r\n" for l in out) + b"\r\n"


def header_value(body, name):
    block = header_fields(body, [name]).decode("latin-1")
    return re.sub(r"\r\n[ \t]+", " ", block.split(":", 1)[1]).strip() if ":" in block else ""


def imap_date(d):
    return d.strftime("%d-%b-%Y %H:%M:%S %z")


def parse_imap_date(text):
    return datetime.datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z")


def parse_search_date(text):
    return datetime.datetime.strptime(text, "%d-%b-%Y").date()


def literal(data):
    return b"{%d}\r\n" % len(data) + data


# -- the server ----------------------------------------------------------------------

class Session(Conn):
    """One client connection: its login, its open folder and what it was told of it."""

    idle_limit = IDLE_LIMIT
    max_literal = MAX_LITERAL

    def __init__(self, server, sock, index):
        super().__init__(server, sock, index)
        self.user = None
        self.readonly = False
        self.view = []    # the UIDs the client knows, in sequence order
        self.ok_text = b"Success"  # the tagged OK's text (a handler may set a code)
        self.told = {}    # uid -> flags the client was told of

    def read_command(self):
        """hostile_imapd's, with a client idle too long counted as gone."""
        try:
            return super().read_command()
        except ScriptError:
            raise ClientGone("idle too long")


class GmailServer(CommandLoop):
    """Serve Gmail's model on 127.0.0.1:port; see the module's doc."""

    thread_prefix = "gmail-imapd"
    conn_class = Session
    greeting = b"* OK Gimap ready for requests from 127.0.0.1 mailfs-test\r\n"

    def __init__(self, labels=("Work", "Receipts"), user=USER, password=PASSWORD,
                 caps=CAPS, max_conns=1000):
        super().__init__(max_conns)
        self.user = user
        self.password = password
        self.caps = caps
        self.store = Store(labels)
        self.lines = []    # (connection index, command line) in arrival order
        self.bad = []      # (command line, reason) of every BAD answer
        self.store_lock = threading.RLock()

    # -- the test's side --

    def url(self):
        return f"imap://{urllib.parse.quote(self.user, safe='')}@127.0.0.1:{self.port}"

    def add_message(self, body, labels=(INBOX,), flags=(), date=None):
        """A new message with these labels (folder names; none: only in All
        Mail; [TRASH]: in the Trash). Returns its X-GM-MSGID."""
        if isinstance(body, str):
            body = body.encode()
        labels = list(labels)
        with self.store_lock:
            msgid = self.store.add(body, labels[0] if labels else ALL_MAIL, flags, date)
            for name in labels[1:]:
                self.store.add_label(msgid, self.store.folder(name))
            return msgid

    def labels_of(self, msgid):
        """The label folders holding the message (not All Mail, not the Trash)."""
        with self.store_lock:
            return self.store.labels_of(msgid)

    def folder_messages(self, name):
        """{uid: msgid} of one folder."""
        with self.store_lock:
            return dict(self.store.folder(name).entries)

    def uid_of(self, name, msgid):
        with self.store_lock:
            return self.store.folder(name).uid_of(msgid)

    def in_trash(self, msgid):
        with self.store_lock:
            return self.store.in_trash(msgid)

    def exists(self, msgid):
        with self.store_lock:
            return msgid in self.store.messages

    def flags_of(self, msgid):
        with self.store_lock:
            return set(self.store.messages[msgid].flags)

    def commands(self):
        """The command lines seen, tags stripped."""
        with self._lock:
            return [l.split(b" ", 1)[1].decode("latin-1") if b" " in l else ""
                    for _, l in self.lines]

    # -- one connection --

    def _dispatch(self, s, line):
        tag, _, rest = line.partition(b" ")
        word, _, args = rest.partition(b" ")
        word = word.decode("latin-1").upper()
        if word == "UID":
            sub, _, args = args.partition(b" ")
            word = "UID " + sub.decode("latin-1").upper()
        fn = getattr(self, "do_" + word.replace(" ", "_").lower(), None)
        out = b""
        s.ok_text = b"Success"
        with self.store_lock:
            try:
                if fn is None:
                    raise bad(f"Unknown command {word}")
                if s.user is None and word not in ("CAPABILITY", "NOOP", "LOGOUT", "ID",
                                                   "LOGIN", "AUTHENTICATE"):
                    raise bad("Please log in first.")
                if s.mailbox is not None:
                    out += self._news(s)
                out += fn(s, tag, args) or b""
                if s.mailbox is not None:
                    out += self._news(s)
                out += b"%s OK %s\r\n" % (tag, s.ok_text)
            except ImapError as e:
                out += b"%s %s %s\r\n" % (tag, e.kind.encode(), str(e).encode())
                if e.kind == "BAD":
                    self.bad.append((line.decode("latin-1"), str(e)))
        s.send(out)
        if word == "LOGOUT":
            s.closed = True

    def _news(self, s):
        """What changed in the open folder since the client was told: EXPUNGE
        (highest sequence first), EXISTS, FETCH FLAGS."""
        folder = self.store.folders.get(s.mailbox)
        current = folder.entries if folder else {}
        out = b""
        for seq in range(len(s.view), 0, -1):
            uid = s.view[seq - 1]
            if uid not in current:
                del s.view[seq - 1]
                s.told.pop(uid, None)
                out += b"* %d EXPUNGE\r\n" % seq
        new = [u for u in current if u not in s.told]
        if new:
            s.view += new
            for u in new:
                s.told[u] = self._flags(folder, u)
            out += b"* %d EXISTS\r\n" % len(s.view)
        for seq, uid in enumerate(s.view, 1):
            flags = self._flags(folder, uid)
            if flags != s.told[uid]:
                s.told[uid] = flags
                out += b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (seq, uid, flags.encode())
        return out

    def _flags(self, folder, uid):
        msg = self.store.messages[folder.entries[uid]]
        flags = set(msg.flags) | ({"\\Deleted"} if uid in folder.deleted else set())
        return " ".join(sorted(flags))

    def _open(self, s):
        if s.mailbox is None:
            raise bad("No mailbox selected.")
        return self.store.folder(s.mailbox)

    def _uids(self, s, spec, by_uid):
        """The UIDs a set names: UIDs, or the client's sequence numbers."""
        folder = self._open(s)
        if by_uid:
            known = sorted(folder.entries)
            return parse_set(spec, known, known[-1] if known else 0)
        seqs = parse_set(spec, range(1, len(s.view) + 1), len(s.view))
        return [s.view[n - 1] for n in seqs if s.view[n - 1] in folder.entries]

    # -- commands before and around login --

    def do_capability(self, s, tag, args):
        return f"* CAPABILITY {self.caps}\r\n".encode()

    def do_noop(self, s, tag, args):
        return b""

    do_check = do_noop

    def do_id(self, s, tag, args):
        return b'* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" "none")\r\n'

    def do_logout(self, s, tag, args):
        return b"* BYE LOGOUT Requested\r\n"

    def _login(self, s, user, password):
        if user != self.user.encode() or password != self.password.encode():
            raise no("[AUTHENTICATIONFAILED] Invalid credentials (Failure)")
        s.user = user.decode()
        s.ok_text = f"{s.user} authenticated (Success)".encode()
        return f"* CAPABILITY {self.caps}\r\n".encode()

    def do_login(self, s, tag, args):
        t = tokens(args)
        if len(t) != 2 or isinstance(t[0], list) or isinstance(t[1], list):
            raise bad("LOGIN needs a user and a password")
        return self._login(s, t[0], t[1])

    def do_authenticate(self, s, tag, args):
        t = tokens(args)
        if not t or t[0].upper() != b"PLAIN":
            raise no("[CANNOT] Unsupported mechanism")
        if len(t) > 1:
            response = t[1]
        else:
            s.send(b"+ \r\n")
            response = s.link.readline()
        if response == b"*":
            raise bad("AUTHENTICATE cancelled")
        try:
            _, user, password = base64.b64decode(response, validate=True).split(b"\0")
        except ValueError:
            raise bad("Invalid SASL argument.")
        return self._login(s, user, password)

    # -- folders --

    def do_list(self, s, tag, args):
        t = tokens(args)
        if len(t) < 2:
            raise bad("LIST needs a reference and a pattern")
        pattern = (t[0] + t[1]).decode()
        rx = re.compile("^" + "".join(".*" if c == "*" else "[^/]*" if c == "%" else
                                      re.escape(c) for c in pattern) + "$")
        out = b""
        for f in self.store.folders.values():
            if rx.match(f.name) or (pattern.upper() == "INBOX" and f.name == INBOX):
                out += b'* LIST (%s) "/" %s\r\n' % (f.attrs.encode(), astring(f.name))
        return out

    def do_lsub(self, s, tag, args):
        return self.do_list(s, tag, args).replace(b"* LIST ", b"* LSUB ")

    def do_create(self, s, tag, args):
        [name] = tokens(args)[:1]
        self.store.create(name.decode().rstrip("/"))

    def do_delete(self, s, tag, args):
        [name] = tokens(args)[:1]
        if s.mailbox == name.decode():
            s.mailbox = None
        self.store.delete_folder(name.decode())

    def do_status(self, s, tag, args):
        t = tokens(args)
        if len(t) != 2 or not isinstance(t[1], list):
            raise bad("STATUS needs a mailbox and items")
        f = self.store.folder(t[0].decode())
        if not f.selectable:
            raise no("[NONEXISTENT] That folder holds no messages.")
        values = {"MESSAGES": len(f.entries), "UIDNEXT": f.uidnext,
                  "UIDVALIDITY": f.uidvalidity, "RECENT": 0,
                  "UNSEEN": sum(1 for m in f.entries.values()
                                if "\\Seen" not in self.store.messages[m].flags)}
        items = []
        for item in t[1]:
            key = item.decode().upper()
            if key not in values:
                raise bad(f"Unknown STATUS item {key}")
            items.append(f"{key} {values[key]}")
        return b"* STATUS %s (%s)\r\n" % (astring(f.name), " ".join(items).encode())

    def do_select(self, s, tag, args, readonly=False):
        name = tokens(args)[0].decode()
        s.mailbox = None
        f = self.store.folder(name)
        if not f.selectable:
            raise no("[NONEXISTENT] That folder holds no messages.")
        s.mailbox, s.readonly = f.name, readonly
        s.view = list(f.entries)
        s.told = {u: self._flags(f, u) for u in s.view}
        s.ok_text = b"[READ-ONLY] EXAMINE completed" if readonly else \
            b"[READ-WRITE] SELECT completed"
        # The news after the command are about a folder just told whole.
        return (b"* FLAGS (%s)\r\n* OK [PERMANENTFLAGS (%s \\*)] Flags permitted.\r\n"
                b"* OK [UIDVALIDITY %d] UIDs valid.\r\n* %d EXISTS\r\n* 0 RECENT\r\n"
                b"* OK [UIDNEXT %d] Predicted next UID.\r\n"
                % (FLAGS.encode(), FLAGS.encode(), f.uidvalidity, len(s.view), f.uidnext))

    def do_examine(self, s, tag, args):
        return self.do_select(s, tag, args, readonly=True)

    def do_close(self, s, tag, args):
        folder = self._open(s)
        if not s.readonly:
            self._expunge(folder, list(folder.deleted))
        s.mailbox, s.view, s.told = None, [], {}

    # -- messages --

    def do_fetch(self, s, tag, args, by_uid=False):
        spec, _, items = args.partition(b" ")
        t = tokens(items)
        items = t[0] if t and isinstance(t[0], list) else t
        folder = self._open(s)
        out = b""
        for uid in self._uids(s, spec, by_uid):
            seq = s.view.index(uid) + 1 if uid in s.view else None
            if seq is None:
                continue
            parts = [b"UID %d" % uid]
            for item in items:
                if item.upper() == b"UID":
                    continue
                parts.append(self._fetch_item(s, folder, uid, item))
            out += b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))
        return out

    def do_uid_fetch(self, s, tag, args):
        return self.do_fetch(s, tag, args, by_uid=True)

    def _fetch_item(self, s, folder, uid, item):
        if isinstance(item, list):
            raise bad("bad FETCH item")
        msg = self.store.messages[folder.entries[uid]]
        name = item.upper()
        if name == b"FLAGS":
            flags = self._flags(folder, uid)
            s.told[uid] = flags
            return b"FLAGS (%s)" % flags.encode()
        if name == b"RFC822.SIZE":
            return b"RFC822.SIZE %d" % len(msg.body)
        if name == b"INTERNALDATE":
            return b'INTERNALDATE "%s"' % imap_date(msg.date).encode()
        if name in (b"X-GM-MSGID", b"X-GM-THRID"):
            return b"%s %d" % (name, msg.msgid)
        if name == b"X-GM-LABELS":
            labels = [self.store.folders[n].label for n in sorted(self.store.labels_of(msg.msgid))]
            if self.store.in_trash(msg.msgid):
                labels.append("\\Trash")
            return b"X-GM-LABELS (%s)" % b" ".join(
                l.encode() if l.startswith("\\") else astring(l) for l in labels)
        if name == b"RFC822.HEADER":
            return b"RFC822.HEADER " + literal(header_block(msg.body))
        if name == b"BODYSTRUCTURE" or name == b"BODY":
            return b'%s ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" %d %d)' % (
                name, len(msg.body) - len(header_block(msg.body)),
                msg.body[len(header_block(msg.body)):].count(b"\n"))
        m = re.fullmatch(rb"(BODY|BODY\.PEEK|BINARY\.PEEK)\[([^\]]*)\](?:<(\d+)\.(\d+)>)?",
                         item, re.IGNORECASE)
        if not m:
            raise bad(f"Unknown FETCH item {item.decode('latin-1')}")
        kind, section, off, length = m.groups()
        data = self._section(msg, section)
        if off is not None:
            data = data[int(off):int(off) + int(length)]
        if kind.upper() == b"BODY" and not s.readonly and "\\Seen" not in msg.flags:
            msg.flags.add("\\Seen")
        shown = b"BINARY" if kind.upper().startswith(b"BINARY") else b"BODY"
        origin = b"<%s>" % off if off is not None else b""
        return b"%s[%s]%s %s" % (shown, section.upper(), origin, literal(data))

    def _section(self, msg, section):
        sec = section.upper()
        if sec == b"":
            return msg.body
        if sec == b"HEADER":
            return header_block(msg.body)
        if sec in (b"TEXT", b"1"):
            return msg.body[len(header_block(msg.body)):]
        m = re.fullmatch(rb"HEADER\.FIELDS(\.NOT)? \(([^)]*)\)", sec)
        if m:
            names = [n.decode() for n in m.group(2).split()]
            return header_fields(msg.body, names, negate=bool(m.group(1)))
        raise bad(f"Unsupported section {section.decode('latin-1')}")

    def do_store(self, s, tag, args, by_uid=False):
        t = tokens(args)
        if len(t) < 3:
            raise bad("STORE needs a set, an item and flags")
        folder = self._open(s)
        if s.readonly:
            raise no("[READ-ONLY] Mailbox is read-only")
        spec, item = t[0], t[1].upper().decode()
        flags = t[2] if isinstance(t[2], list) else t[2:]
        flags = {f.decode() for f in flags}
        labels = re.fullmatch(r"([+-]?)X-GM-LABELS(\.SILENT)?", item)
        if labels:
            return self._store_labels(s, folder, self._uids(s, spec, by_uid),
                                      labels.group(1), flags)
        m = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", item)
        if not m:
            raise bad(f"Unknown STORE item {item}")
        out = b""
        for uid in self._uids(s, spec, by_uid):
            msg = self.store.messages[folder.entries[uid]]
            deleted = uid in folder.deleted
            if m.group(1) == "+":
                msg.flags |= flags - {"\\Deleted", "\\Recent"}
                deleted = deleted or "\\Deleted" in flags
            elif m.group(1) == "-":
                msg.flags -= flags
                deleted = deleted and "\\Deleted" not in flags
            else:
                msg.flags = flags - {"\\Deleted", "\\Recent"}
                deleted = "\\Deleted" in flags
            if deleted:
                folder.deleted.add(uid)
            else:
                folder.deleted.discard(uid)
            now = self._flags(folder, uid)
            if uid in s.told:
                s.told[uid] = now
                if not m.group(2):
                    out += b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (
                        s.view.index(uid) + 1, uid, now.encode())
        return out

    def _label_folder(self, label):
        """The folder of a label as X-GM-LABELS names it (\\Inbox, Work)."""
        for f in self.store.label_folders():
            if f.label.lower() == label.lower() or f.name == label:
                return f
        raise no(f"[NONEXISTENT] No label {label}")

    def _store_labels(self, s, folder, uids, how, labels):
        """STORE (+/-)X-GM-LABELS: add or remove labels. A message that loses
        the open folder's label leaves it (EXPUNGE with the news)."""
        wanted = [self._label_folder(label) for label in labels]
        for uid in uids:
            msgid = folder.entries.get(uid)
            if msgid is None:
                continue
            if how != "+":
                for f in self.store.label_folders():
                    if (how == "-") == (f in wanted):
                        self.store.unplace(msgid, f)
            if how != "-":
                for f in wanted:
                    self.store.add_label(msgid, f)
        return b""

    def do_uid_store(self, s, tag, args):
        return self.do_store(s, tag, args, by_uid=True)

    def _copy_or_move(self, s, args, by_uid, move):
        t = tokens(args)
        if len(t) != 2:
            raise bad("COPY needs a set and a mailbox")
        src = self._open(s)
        if move and s.readonly:
            raise no("[READ-ONLY] Mailbox is read-only")
        dst = self.store.folder(t[1].decode())
        if not dst.selectable:
            raise no("[NONEXISTENT] That folder holds no messages.")
        pairs = []
        for uid in self._uids(s, t[0], by_uid):
            msgid = src.entries[uid]
            new = self.store.move(msgid, src, dst) if move else self.store.add_label(msgid, dst)
            pairs.append((uid, new))
        if not pairs:
            return b""
        code = b"COPYUID %d %s %s" % (dst.uidvalidity,
                                       ",".join(str(a) for a, _ in pairs).encode(),
                                       ",".join(str(b) for _, b in pairs).encode())
        if move:
            return b"* OK [%s] (Success)\r\n" % code
        s.ok_text = b"[%s] (Success)" % code
        return b""

    def do_copy(self, s, tag, args):
        return self._copy_or_move(s, args, by_uid=False, move=False)

    def do_uid_copy(self, s, tag, args):
        return self._copy_or_move(s, args, by_uid=True, move=False)

    def do_move(self, s, tag, args):
        return self._copy_or_move(s, args, by_uid=False, move=True)

    def do_uid_move(self, s, tag, args):
        return self._copy_or_move(s, args, by_uid=True, move=True)

    def _expunge(self, folder, uids):
        for uid in sorted(uids):
            if uid in folder.deleted and uid in folder.entries:
                self.store.expunge_entry(folder.entries[uid], folder)

    def do_expunge(self, s, tag, args):
        folder = self._open(s)
        if s.readonly:
            raise no("[READ-ONLY] Mailbox is read-only")
        self._expunge(folder, list(folder.deleted))

    def do_uid_expunge(self, s, tag, args):
        folder = self._open(s)
        if s.readonly:
            raise no("[READ-ONLY] Mailbox is read-only")
        self._expunge(folder, self._uids(s, tokens(args)[0], True))

    def do_append(self, s, tag, args):
        t = tokens(args)
        if len(t) < 2:
            raise bad("APPEND needs a mailbox and a message")
        name, body, flags, date = t[0].decode(), t[-1], [], None
        for extra in t[1:-1]:
            if isinstance(extra, list):
                flags = [f.decode() for f in extra]
            else:
                date = parse_imap_date(extra.decode())
        folder = self.store.folder(name)
        msgid = self.store.add(body, folder.name, flags, date)
        s.ok_text = b"[APPENDUID %d %d] (Success)" % (folder.uidvalidity,
                                                     folder.uid_of(msgid))
        return b""

    def do_search(self, s, tag, args, by_uid=False):
        folder = self._open(s)
        t = tokens(args)
        if len(t) >= 2 and t[0].upper() == b"CHARSET":
            t = t[2:]
        hits = []
        for seq, uid in enumerate(s.view, 1):
            if uid not in folder.entries:
                continue
            rest = list(t)
            ok = True
            while rest and ok:
                ok = self._match(s, folder, seq, uid, rest)
            if ok:
                hits.append(uid if by_uid else seq)
        return b"* SEARCH%s\r\n" % b"".join(b" %d" % n for n in hits)

    def do_uid_search(self, s, tag, args):
        return self.do_search(s, tag, args, by_uid=True)

    def _match(self, s, folder, seq, uid, rest):
        """Whether the message matches the search key at the head of rest (taken off)."""
        key = rest.pop(0)
        if isinstance(key, list):
            sub = list(key)
            ok = True
            while sub:
                ok = self._match(s, folder, seq, uid, sub) and ok
            return ok
        k = key.upper().decode("latin-1")
        msg = self.store.messages[folder.entries[uid]]
        flags = set(self._flags(folder, uid).split())
        simple = {"ALL": True, "SEEN": "\\Seen" in flags, "UNSEEN": "\\Seen" not in flags,
                  "FLAGGED": "\\Flagged" in flags, "UNFLAGGED": "\\Flagged" not in flags,
                  "DELETED": "\\Deleted" in flags, "UNDELETED": "\\Deleted" not in flags,
                  "ANSWERED": "\\Answered" in flags, "UNANSWERED": "\\Answered" not in flags,
                  "DRAFT": "\\Draft" in flags, "UNDRAFT": "\\Draft" not in flags,
                  "RECENT": False, "NEW": False, "OLD": True}
        if k in simple:
            return simple[k]
        if k == "NOT":
            return not self._match(s, folder, seq, uid, rest)
        if k == "OR":
            a = self._match(s, folder, seq, uid, rest)
            b = self._match(s, folder, seq, uid, rest)
            return a or b
        if re.fullmatch(r"[\d*:,]+", k):
            return seq in parse_set(key, [seq], len(s.view))
        if not rest:
            raise bad(f"Search key {k} needs an argument")
        arg = rest.pop(0)
        if k == "UID":
            known = sorted(folder.entries)
            return uid in parse_set(arg, [uid], known[-1] if known else 0)
        if k == "LARGER":
            return len(msg.body) > int(arg)
        if k == "SMALLER":
            return len(msg.body) < int(arg)
        if k == "X-GM-MSGID":
            return msg.msgid == int(arg)
        if k in ("KEYWORD", "UNKEYWORD"):
            return (arg.decode() in flags) == (k == "KEYWORD")
        if k in ("SUBJECT", "FROM", "TO", "CC", "BCC"):
            return arg.lower() in header_value(msg.body, k).encode("latin-1").lower()
        if k in ("BODY", "TEXT"):
            where = msg.body if k == "TEXT" else msg.body[len(header_block(msg.body)):]
            return arg.lower() in where.lower()
        if k in ("BEFORE", "ON", "SINCE"):
            day, when = msg.date.date(), parse_search_date(arg.decode())
            return {"BEFORE": day < when, "ON": day == when, "SINCE": day >= when}[k]
        if k == "HEADER":
            value = rest.pop(0) if rest else b""
            present = header_fields(msg.body, [arg.decode()]).strip() != b""
            return present and value.lower() in header_value(
                msg.body, arg.decode()).encode("latin-1").lower()
        raise bad(f"Unsupported search key {k}")


# -- by hand ----------------------------------------------------------------------

def sample(n, subject):
    return (f"From: Sender <sender@example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Date: Fri, 01 Mar 2024 09:{n:02d}:00 +0000\r\n"
            f"Message-ID: <gmail-sample-{n}@mailfs.test>\r\n\r\nHello {n}.\r\n").encode()


def main():
    ap = argparse.ArgumentParser(description="A Gmail-like IMAP server on 127.0.0.1, plain TCP.")
    ap.add_argument("--port", type=int, default=0, help="0: a free one")
    a = ap.parse_args()
    srv = GmailServer()
    srv.bind_port = a.port
    with srv:
        srv.add_message(sample(1, "In the inbox and Work"), labels=(INBOX, "Work"))
        srv.add_message(sample(2, "Only in All Mail"), labels=())
        srv.add_message(sample(3, "A receipt"), labels=("Receipts",), flags=("\\Seen",))
        print(f"{srv.url()}  password: {srv.password}  (mount with -o tls=none)", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while True:
                time.sleep(1)
                for e in srv.errors:
                    print("error:", e, flush=True)
                for line, why in srv.bad:
                    print(f"BAD: {why}: {line}", flush=True)
                srv.errors.clear()
                srv.bad.clear()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
