# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/delay-proxy: forwards bytes exactly, adds the delay, cuts after N bytes."""

import os
import random
import socket
import subprocess
import sys
import threading
import time
import importlib.machinery
import importlib.util

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "delay-proxy")


def load(path, name):
    """Import a script whose file name has no .py."""
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


dp = load(SCRIPT, "delay_proxy")


class EchoServer:
    """Echoes every byte back; records what it received."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    def echo(self, c):
        got = bytearray()
        self.received.append(got)
        with c:
            try:
                while True:
                    data = c.recv(65536)
                    if not data:
                        c.shutdown(socket.SHUT_WR)
                        return
                    got += data
                    c.sendall(data)
            except OSError:
                return

    def close(self):
        self.sock.close()


@pytest.fixture
def echo():
    s = EchoServer()
    yield s
    s.close()


def roundtrip(port, payload, timeout=30):
    """Send payload (in a thread) and read until EOF; returns the bytes read."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = bytearray()

    def send():
        try:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    with c:
        while True:
            try:
                data = c.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
    t.join(timeout)
    return bytes(out)


def test_forwards_bytes_exactly(echo):
    payload = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
    proxy = dp.start("127.0.0.1", echo.port, rtt_ms=10)
    try:
        assert roundtrip(proxy.port, payload) == payload
        assert bytes(echo.received[0]) == payload
        # Several connections at once, each kept apart and in order.
        results = {}
        payloads = {i: random.Random(i).randbytes(200_000 + i) for i in range(4)}
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, roundtrip(proxy.port, payloads[i]))) for i in payloads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == payloads
    finally:
        proxy.stop()


@pytest.mark.parametrize("rtt_ms", [0, 100])
def test_adds_the_delay(echo, rtt_ms):
    port, stop = dp.start("127.0.0.1", echo.port, rtt_ms=rtt_ms)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            for i in range(3):
                t0 = time.monotonic()
                c.sendall(b"ping %d\n" % i)
                got = b""
                while len(got) < 7:
                    got += c.recv(100)
                elapsed = time.monotonic() - t0
                assert got == b"ping %d\n" % i
                # Loose on purpose: a shared machine may add any amount on top.
                assert elapsed >= rtt_ms / 1000.0 * 0.99
    finally:
        stop()


def test_delay_does_not_serialise_throughput(echo):
    """10 MB at 200 ms RTT: a per-chunk sleep would take ~160 x 0.1 s = 16 s."""
    payload = random.Random(3).randbytes(10 * 1024 * 1024)
    proxy = dp.start("127.0.0.1", echo.port, rtt_ms=200)
    try:
        t0 = time.monotonic()
        assert roundtrip(proxy.port, payload, timeout=60) == payload
        assert time.monotonic() - t0 < 12
    finally:
        proxy.stop()


@pytest.mark.parametrize("cut", [0, 1, 1000, 100_000])
def test_cuts_after_n_bytes(echo, cut):
    """Only the client sends; the echo counts in the other direction too."""
    proxy = dp.start("127.0.0.1", echo.port, cut_after=cut)
    try:
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        with c:
            try:
                c.sendall(b"x" * 400_000)
            except OSError:
                pass
            got = bytearray()
            while True:
                try:
                    data = c.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not data:
                    break
                got += data
        # Both directions count: what came back plus what reached the echo is N.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sent_on = sum(len(r) for r in echo.received)
            if sent_on + len(got) >= cut:
                break
            time.sleep(0.05)
        sent_on = sum(len(r) for r in echo.received)
        assert sent_on + len(got) == cut
        assert len(got) <= sent_on
    finally:
        proxy.stop()


def test_command_line_prints_port_and_runs_until_killed(echo):
    p = subprocess.Popen([sys.executable, SCRIPT, "--target", f"127.0.0.1:{echo.port}",
                          "--rtt", "20"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("PORT ")
        port = int(line.split()[1])
        assert roundtrip(port, b"hello\n" * 1000) == b"hello\n" * 1000
        assert p.poll() is None
    finally:
        p.terminate()
        assert p.wait(10) == 0
