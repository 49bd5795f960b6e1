# SPDX-License-Identifier: GPL-2.0-or-later
"""POP3 steps for the scripted hostile server (hostile.py).

POP3 commands carry no tag: PopExpect reads one client line and checks its
first word; PopOn answers it. Every other step (Send, Stall, SendForever,
StartTLS, Close, Call) and HostileServer itself come from hostile.py.

    script = [Send("+OK hostile\\r\\n"), *pop3_login_steps(), PopOn("UIDL", ...)]
"""

from hostile import ScriptError, Send


class PopExpect:
    def __init__(self, words=None):
        if isinstance(words, str):
            words = (words,)
        self.words = None if words is None else {w.upper() for w in words}

    def play(self, link):
        line = link.readline()
        link.server.lines.append(line)
        word, _, rest = line.partition(b" ")
        word = word.decode("latin-1").upper()
        link.server.commands.append(word + (" " + rest.decode("latin-1") if rest else ""))
        if self.words is not None and word not in self.words:
            raise ScriptError(f"expected {sorted(self.words)}, got {line[:80]!r}")


class PopOn:
    """PopExpect + Send."""

    def __init__(self, words, data):
        self.expect = PopExpect(words)
        self.reply = Send(data)

    def play(self, link):
        self.expect.play(link)
        self.reply.play(link)


def capa_reply(caps=("USER", "UIDL", "TOP")):
    return "+OK\r\n" + "".join(c + "\r\n" for c in caps) + ".\r\n"


def pop3_login_steps(caps=("USER", "UIDL", "TOP")):
    """Greeting, CAPA, USER/PASS accepted, CAPA again (a plain-text link)."""
    return [
        Send("+OK hostile POP3 ready\r\n"),
        PopOn("CAPA", capa_reply(caps)),
        PopOn("USER", "+OK\r\n"),
        PopOn("PASS", "+OK logged in\r\n"),
        PopOn("CAPA", capa_reply(caps)),
    ]


def pop3_quit_steps():
    return [PopOn("QUIT", "+OK bye\r\n")]
