# SPDX-License-Identifier: GPL-2.0-or-later
"""A scripted hostile IMAP server, for testing how the client copes with a
server that lies, attacks or stalls. Standard library only.

One server plays one script on one connection, on 127.0.0.1 and a free port:

    script = [
        Send(b"* OK [CAPABILITY IMAP4rev1] hostile\\r\\n"),
        On(("LOGIN", "AUTHENTICATE"), "{tag} OK [CAPABILITY IMAP4rev1] in\\r\\n"),
        On("LIST", b"* LIST () \\"/\\" {4294967296}\\r\\n"),
        Stall(10),
    ]
    with HostileServer(script, cert=..., key=...) as srv:
        ... run the client against srv.port ...
    srv.done, srv.error, srv.commands ...

Steps:
    Send(data)             write bytes as they are (one write: injected bytes
                           after a response arrive in the same segment)
    Expect(words)          read one client line; its command word must be one of
                           words (case-insensitive; None: any). The line's tag is
                           remembered for the replies that follow.
    Reply(template)        Send with every "{tag}" replaced by the last tag (no
                           str.format: literal headers like {1000} stay as they are)
    On(words, template)    Expect + Reply
    StartTLS()             TLS handshake as the server (cert/key of the server)
    Stall(seconds)         hold the socket, send nothing, swallow what the client
                           sends, until the time passed or the client closed
    SendForever(chunk)     write chunk again and again until the client closes
                           (or max_seconds passed)
    Close()                close the connection now
    Call(fn)               fn(link) for anything else
Every wait is bounded, and the thread notices the end of the with block within
a fraction of a second: on exit the thread is joined and every socket closed,
whatever state the script was in (even when the test failed).

What happened is kept for assertions: commands (the client's lines, tags
stripped), done (the script ran to its end), client_closed (the client hung
up before the script's end), error (a script step failed: wrong command, no
command in time), sent_forever (bytes written by SendForever).
"""

import socket
import ssl
import threading
import time

POLL = 0.1          # how often blocked operations look at the stop flag
EXPECT_TIMEOUT = 15  # the longest a script waits for a client line
MAX_LINE = 1 << 20  # client lines longer than this are a script error


class ClientGone(Exception):
    """The client closed the connection (or reset it)."""


class ScriptError(Exception):
    """The client did not do what the script expected."""


class Stopped(Exception):
    """The with block ended while the script was still running."""


class Link:
    """The server's end of the connection, as steps see it."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buf = b""
        self.tag = b"*"
        self.sock.settimeout(POLL)

    def _check_stop(self):
        if self.server._stop.is_set():
            raise Stopped()

    def send(self, data):
        view = memoryview(data)
        deadline = time.monotonic() + EXPECT_TIMEOUT
        while view:
            self._check_stop()
            try:
                n = self.sock.send(view)
            except (socket.timeout, ssl.SSLWantWriteError):
                if time.monotonic() > deadline:
                    raise ScriptError("the client stopped reading")
                continue
            except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as e:
                raise ClientGone(str(e))
            view = view[n:]

    def recv_some(self):
        """Up to 64 KiB, b"" at EOF, None when nothing came within POLL."""
        self._check_stop()
        try:
            return self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return None
        except (ConnectionResetError, ssl.SSLEOFError):
            return b""

    def readline(self, timeout=EXPECT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise ScriptError("client line too long")
            if time.monotonic() > deadline:
                raise ScriptError(f"no command from the client within {timeout}s")
            data = self.recv_some()
            if data == b"":
                raise ClientGone("EOF")
            if data:
                self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def start_tls(self, context):
        if self.buf:
            raise ScriptError(f"client sent {self.buf[:40]!r} before the TLS handshake")
        self.sock.settimeout(EXPECT_TIMEOUT)
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            raise ScriptError(f"TLS handshake failed: {e}")
        self.sock.settimeout(POLL)


# -- steps -----------------------------------------------------------------------

class Send:
    def __init__(self, data):
        self.data = data if isinstance(data, bytes) else data.encode()

    def play(self, link):
        link.send(self.data)


class Reply:
    def __init__(self, template):
        self.template = template if isinstance(template, bytes) else template.encode()

    def play(self, link):
        link.send(self.template.replace(b"{tag}", link.tag))


class Expect:
    def __init__(self, words=None):
        if isinstance(words, str):
            words = (words,)
        self.words = None if words is None else {w.upper() for w in words}

    def play(self, link):
        line = link.readline()
        link.server.lines.append(line.rstrip(b"\r\n"))
        parts = line.split(b" ", 2)
        tag = parts[0]
        word = parts[1].decode("latin-1").upper() if len(parts) > 1 else ""
        link.server.commands.append(" ".join(
            [word] + ([parts[2].decode("latin-1")] if len(parts) > 2 else [])))
        if self.words is not None and word not in self.words:
            raise ScriptError(f"expected {sorted(self.words)}, got {line[:80]!r}")
        link.tag = tag


class On:
    def __init__(self, words, template):
        self.expect = Expect(words)
        self.reply = Reply(template)

    def play(self, link):
        self.expect.play(link)
        self.reply.play(link)


class StartTLS:
    def play(self, link):
        link.start_tls(link.server.tls_context())


class Stall:
    def __init__(self, seconds):
        self.seconds = seconds

    def play(self, link):
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            if link.recv_some() == b"":
                raise ClientGone("EOF while stalled")


class SendForever:
    def __init__(self, chunk=b"a" * 65536, max_seconds=20):
        self.chunk = chunk
        self.max_seconds = max_seconds

    def play(self, link):
        deadline = time.monotonic() + self.max_seconds
        view = memoryview(self.chunk)
        while time.monotonic() < deadline:
            link._check_stop()
            try:
                n = link.sock.send(view)
            except (socket.timeout, ssl.SSLWantWriteError):
                continue
            except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as e:
                raise ClientGone(str(e))
            link.server.sent_forever += n
            view = view[n:] or memoryview(self.chunk)
        raise ScriptError(f"the client still read after {self.max_seconds}s")


class Close:
    def play(self, link):
        link.server._close_conn()


class Call:
    def __init__(self, fn):
        self.fn = fn

    def play(self, link):
        self.fn(link)


# -- the server ----------------------------------------------------------------------

class HostileServer:
    """Accept one connection on 127.0.0.1, play the script on it, close it."""

    def __init__(self, script, cert=None, key=None, implicit_tls=False, accept_timeout=20):
        self.script = list(script)
        self.cert, self.key = cert, key
        self.implicit_tls = implicit_tls
        self.accept_timeout = accept_timeout
        self.commands = []
        self.lines = []  # every client line, raw (without CRLF)
        self.done = False
        self.client_closed = False
        self.error = None
        self.sent_forever = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = None
        self._conn = None
        self._thread = None
        self.port = None

    def tls_context(self):
        if not (self.cert and self.key):
            raise ScriptError("TLS step in a script of a server without cert/key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def __enter__(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._listener.settimeout(POLL)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=f"hostile-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self, timeout=10):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Unblock whatever it waits in; it checks the flag every POLL.
                self._close_conn()
                self._thread.join(timeout)
            alive = self._thread.is_alive()
            self._thread = None
            if alive:
                raise RuntimeError("hostile server thread did not stop")
        self._close_conn()
        if self._listener:
            self._listener.close()
            self._listener = None

    def wait_done(self, timeout=10):
        """Wait for the script to end (done, error or client gone)."""
        if self._thread:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _close_conn(self):
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self):
        deadline = time.monotonic() + self.accept_timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                sock, _ = self._listener.accept()
                return sock
            except socket.timeout:
                continue
        return None

    def _run(self):
        try:
            sock = self._accept()
            if sock is None:
                if not self._stop.is_set():
                    self.error = "no client connected"
                return
            link = Link(self, sock)
            with self._lock:
                self._conn = sock
            if self.implicit_tls:
                link.start_tls(self.tls_context())
                with self._lock:
                    self._conn = link.sock
            for step in self.script:
                step.play(link)
                with self._lock:
                    if self._conn is not None:
                        self._conn = link.sock
            self.done = True
        except ClientGone:
            self.client_closed = True
        except Stopped:
            pass
        except ScriptError as e:
            self.error = str(e)
        except Exception as e:  # a bug in a script must not kill the thread silently
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._close_conn()


# -- a server of many connections ----------------------------------------------------

class ConnectionServer:
    """Accept every connection on 127.0.0.1:port and serve each in a thread of
    its own (a mount's pool opens several). Subclasses define _serve(sock,
    index) and thread_prefix. Up to max_conns connections are served; more
    are closed and recorded in errors. The with block's end sets the stop
    flag, joins every thread and closes every socket, whatever state the
    connections were in."""

    thread_prefix = "server"
    bind_port = 0  # 0: a free port (a fixed one is for debugging by hand)

    def __init__(self, max_conns):
        self.max_conns = max_conns
        self.errors = []      # what went wrong on the server's side
        self.connections = 0
        self.port = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = None
        self._socks = []
        self._threads = []

    def __enter__(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.bind_port:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.bind_port))
        self._listener.listen(4)
        self._listener.settimeout(POLL)
        self.port = self._listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop,
                             name=f"{self.thread_prefix}-{self.port}", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self, timeout=10):
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout)
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if self._listener:
            self._listener.close()
            self._listener = None
        if alive:
            raise RuntimeError(f"{self.thread_prefix} threads did not stop: {alive}")

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                if self.connections >= self.max_conns:
                    self.errors.append("too many connections")
                    sock.close()
                    continue
                self.connections += 1
                index = self.connections
                self._socks.append(sock)
                self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve, args=(sock, index),
                                 name=f"{self.thread_prefix}-{self.port}-{index}", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock, index):
        raise NotImplementedError


def login_steps(caps="IMAP4rev1", post_caps=None):
    """A greeting that states caps, then any LOGIN or one-line AUTHENTICATE accepted.

    Offer "AUTH=PLAIN SASL-IR" or neither: AUTH=PLAIN without SASL-IR would
    make the client wait for a continuation this script does not send.
    """
    post = post_caps or caps
    return [
        Send(f"* OK [CAPABILITY {caps}] hostile server ready\r\n"),
        On(("LOGIN", "AUTHENTICATE"), f"{{tag}} OK [CAPABILITY {post}] logged in\r\n"),
    ]


def logout_steps():
    return [On("LOGOUT", "* BYE logging out\r\n{tag} OK LOGOUT completed\r\n")]

