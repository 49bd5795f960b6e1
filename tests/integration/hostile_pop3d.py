# SPDX-License-Identifier: GPL-2.0-or-later
"""A scripted POP3 maildrop for whole mounts. Standard library only.

hostile_pop3.py plays a fixed script on one connection, which fits the
probe. A mount does not: it logs in again at every poll, after every idle
QUIT, and what it sends depends on what the test does. So, as
hostile_imapd.py does for IMAP, this is a loop over hostile.py's Link that
answers one command at a time from a small maildrop model, on every
connection the client opens:

    srv = Maildrop([("uidl-1", b"Subject: a\\r\\n\\r\\nbody\\r\\n")],
                   refuse=lambda n: "[LOGIN-DELAY] wait" if n == 2 else None)
    with srv:
        ... mount pop3://tester@127.0.0.1:{srv.port} with tls=none ...
    srv.logins, srv.commands(), srv.uidls() ...

The model, as RFC 1939 has it: a session sees the messages there at its
login, numbered from 1; DELE marks, RSET unmarks, QUIT commits the marks
(a connection closed without QUIT commits nothing). Commands answered:
CAPA (caps; after a login, caps + login_caps), USER, PASS, STAT, UIDL,
LIST, TOP n 0, RETR, DELE, RSET, NOOP, QUIT; anything else -ERR.
Hooks for the test:
    refuse(n)          called at the n-th PASS (1-based, refused ones count):
                       None accepts; a text ("[LOGIN-DELAY] ...") is sent
                       after "-ERR " and the login is refused; it runs
                       with the maildrop's lock held: it may read .logins,
                       not call its methods
    on_quit(uidls)     called at a QUIT that commits marks, before anything
                       happens: returns whether to commit them, and may
                       block (to hold the reply back); the reply is sent
                       after it returns
    add(uidl, data)    a new message, seen from the next login on
Plain TCP only (tls=none). Sessions are served one thread each; the with
block's end stops them within a fraction of a second and closes every
socket.
"""

import time

from hostile import ClientGone, ConnectionServer, Link, ScriptError, Stopped
from hostile_pop3 import capa_reply

IDLE_LIMIT = 120  # a session with no command for this long is closed


def stuff(data):
    """A multi-line answer's body: dot-stuffed, CRLF at the end, terminated."""
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")[:-1] if data else []
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines) + b".\r\n"


class Session:
    def __init__(self, index):
        self.index = index
        self.msgs = None  # [(uidl, data)] as of the login; None before it
        self.marked = set()

    def message(self, arg):
        n = int(arg.split()[0])
        if not self.msgs or not 1 <= n <= len(self.msgs) or n in self.marked:
            raise KeyError(n)
        return n, self.msgs[n - 1]


class Maildrop(ConnectionServer):
    """Serve every connection on 127.0.0.1:port from the maildrop model."""

    thread_prefix = "maildrop"

    def __init__(self, messages=(), caps=("USER", "UIDL", "TOP", "RESP-CODES"),
                 login_caps=(), refuse=None, on_quit=None, max_conns=500):
        self.messages = [(u, d if isinstance(d, bytes) else d.encode()) for u, d in messages]
        self.caps = list(caps)
        self.login_caps = list(login_caps)
        self.refuse = refuse
        self.on_quit = on_quit
        super().__init__(max_conns)
        self.logins = []     # (time.monotonic(), accepted) of every PASS, in order
        self.lines = []      # (connection index, raw command line)
        self.committed = []  # uidls deleted by QUITs, in order
        self._logged_in = set()  # connection indexes past an accepted PASS, still open

    # -- the model, for the test --

    def add(self, uidl, data):
        with self._lock:
            self.messages.append((uidl, data if isinstance(data, bytes) else data.encode()))

    def uidls(self):
        with self._lock:
            return [u for u, _ in self.messages]

    def accepted_logins(self):
        with self._lock:
            return [t for t, ok in self.logins if ok]

    def sessions_open(self):
        """Sessions past their login whose connection is still open."""
        with self._lock:
            return len(self._logged_in)

    def refused_logins(self):
        with self._lock:
            return sum(1 for _, ok in self.logins if not ok)

    def commands(self):
        with self._lock:
            return [l.decode("latin-1") for _, l in self.lines]

    # -- one connection --

    def _serve(self, sock, index):
        link = Link(self, sock)
        sess = Session(index)
        try:
            link.send(b"+OK scripted maildrop ready\r\n")
            while True:
                line = link.readline(timeout=IDLE_LIMIT)
                with self._lock:
                    self.lines.append((index, line))
                word, _, arg = line.decode("latin-1").partition(" ")
                if self._dispatch(link, sess, word.upper(), arg):
                    return
        except (ClientGone, Stopped, ScriptError):
            pass
        except Exception as e:  # a bug in the maildrop must show in the test
            self.errors.append(f"connection {index}: {type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._logged_in.discard(index)
                if sock in self._socks:
                    self._socks.remove(sock)
            try:
                sock.close()
            except OSError:
                pass

    # -- commands: True ends the session --

    def _dispatch(self, link, sess, word, arg):
        fn = getattr(self, "do_" + word.lower(), None)
        if fn is None or (sess.msgs is None and word not in ("CAPA", "USER", "PASS", "QUIT")):
            link.send(b"-ERR not now\r\n")
            return False
        try:
            out = fn(sess, arg)
        except (KeyError, ValueError, IndexError):
            out = b"-ERR no such message\r\n"
        if word == "QUIT":
            try:
                link.send(out)
            except ClientGone:
                pass
            return True
        link.send(out)
        return False

    def do_capa(self, sess, arg):
        return capa_reply(self.caps + (self.login_caps if sess.msgs is not None else [])).encode()

    def do_user(self, sess, arg):
        return b"+OK\r\n"

    def do_pass(self, sess, arg):
        with self._lock:
            n = len(self.logins) + 1
            why = self.refuse(n) if self.refuse else None
            self.logins.append((time.monotonic(), why is None))
            if why is None:
                sess.msgs = list(self.messages)
                self._logged_in.add(sess.index)
        if why is not None:
            return f"-ERR {why}\r\n".encode()
        return b"+OK logged in\r\n"

    def _listed(self, sess):
        return [(n, u, d) for n, (u, d) in enumerate(sess.msgs, 1) if n not in sess.marked]

    def do_stat(self, sess, arg):
        listed = self._listed(sess)
        return b"+OK %d %d\r\n" % (len(listed), sum(len(d) for _, _, d in listed))

    def do_uidl(self, sess, arg):
        return b"+OK\r\n" + b"".join(b"%d %s\r\n" % (n, u.encode())
                                     for n, u, _ in self._listed(sess)) + b".\r\n"

    def do_list(self, sess, arg):
        return b"+OK\r\n" + b"".join(b"%d %d\r\n" % (n, len(d))
                                     for n, _, d in self._listed(sess)) + b".\r\n"

    def do_top(self, sess, arg):
        _, (_, data) = sess.message(arg)
        head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        return b"+OK\r\n" + stuff(head)

    def do_retr(self, sess, arg):
        _, (_, data) = sess.message(arg)
        return b"+OK %d octets\r\n" % len(data) + stuff(data)

    def do_dele(self, sess, arg):
        n, _ = sess.message(arg)
        sess.marked.add(n)
        return b"+OK marked\r\n"

    def do_rset(self, sess, arg):
        sess.marked.clear()
        return b"+OK\r\n"

    def do_noop(self, sess, arg):
        return b"+OK\r\n"

    def do_quit(self, sess, arg):
        if sess.msgs is None or not sess.marked:
            return b"+OK bye\r\n"
        gone = [sess.msgs[n - 1][0] for n in sorted(sess.marked)]
        if self.on_quit is None or self.on_quit(gone):
            with self._lock:
                self.messages = [(u, d) for u, d in self.messages if u not in gone]
                self.committed += gone
        return b"+OK bye\r\n"
