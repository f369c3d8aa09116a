#!/usr/bin/env python3
"""http_raw.py - a raw HTTP client for intake_http_test.sh: exactly the bytes
given, in the pieces given, then everything the server sends back.

    http_raw.py PORT [options] PIECE...

Each PIECE is sent as it is, after the escapes \\r \\n \\t \\\\ and \\xHH are
turned into their bytes ("@N:C" sends N bytes C instead, for bodies and heads
too large to write out).  Options:

    --gap S        wait S seconds between pieces (0)
    --join         send all the pieces in one write
    --wait S       after the last piece, read until the server closes or S
                   seconds pass with nothing new (2)
    --first S      read for S seconds after the FIRST piece before sending the
                   rest, and print what came then, followed by "<--->"
    --shut         shut our sending side after the last piece
    --slow         read the answer 4 KB at a time, 2 ms apart, through a
                   small receive buffer (the server must wait for room)
    --body-md5     print only the status line, the body's length and MD5

Prints what came back (as Latin-1), then "<EOF>" when the server closed the
connection, "<RESET>" when it reset it, or "<OPEN>" when it was still open.
"""
import hashlib
import re
import socket
import sys
import time


def piece(text):
    m = re.fullmatch(r"@(\d+):(.)", text, re.S)
    if m:
        return m.group(2).encode() * int(m.group(1))
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}.get(n, ("\\" + n).encode())
            i += 2
            continue
        out += c.encode()
        i += 1
    return bytes(out)


def read_all(s, wait, slow):
    got = bytearray()
    end = "<OPEN>"
    s.settimeout(wait)
    while True:
        try:
            b = s.recv(4096 if slow else 65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            end = "<RESET>"
            break
        if not b:
            end = "<EOF>"
            break
        got += b
        if slow:
            time.sleep(0.002)
    return bytes(got), end


def main():
    args = sys.argv[1:]
    port = int(args.pop(0))
    gap, wait, first, shut, slow, md5, join = 0.0, 2.0, None, False, False, False, False
    pieces = []
    while args:
        a = args.pop(0)
        if a == "--gap":
            gap = float(args.pop(0))
        elif a == "--wait":
            wait = float(args.pop(0))
        elif a == "--first":
            first = float(args.pop(0))
        elif a == "--join":
            join = True
        elif a == "--shut":
            shut = True
        elif a == "--slow":
            slow = True
        elif a == "--body-md5":
            md5 = True
        else:
            pieces.append(piece(a))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if slow:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    if join:
        pieces = [b"".join(pieces)]
    for i, p in enumerate(pieces):
        if i > 0 and gap:
            time.sleep(gap)
        try:
            s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            break
        if i == 0 and first is not None:
            got, _ = read_all(s, first, False)
            sys.stdout.write(got.decode("latin-1") + "<--->")
    if shut:
        s.shutdown(socket.SHUT_WR)
    got, end = read_all(s, wait, slow)
    if md5:
        head, _, body = got.partition(b"\r\n\r\n")
        print(head.split(b"\r\n")[0].decode("latin-1"), len(body), hashlib.md5(body).hexdigest())
    else:
        sys.stdout.write(got.decode("latin-1"))
    print(end)


if __name__ == "__main__":
    main()
