"""A multithreaded memcached client for the preload test: every thread SETs
keys with values derived from the key and GETs them back, verifying each value
byte for byte. Bounded by a count and a deadline; loopback only."""
import hashlib
import socket
import sys
import threading
import time


def value_for(key: bytes, size: int) -> bytes:
    seed = hashlib.sha256(key).digest()
    return (seed * (size // len(seed) + 1))[:size]


def recv_until(sock, buf: bytearray, marker: bytes) -> bytes:
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buf.extend(chunk)
    i = buf.index(marker) + len(marker)
    out = bytes(buf[:i])
    del buf[:i]
    return out


def worker(port, tid, ops, deadline, errors, done):
    sock = socket.create_connection(("127.0.0.1", port))
    buf = bytearray()
    n = 0
    for i in range(ops):
        if time.time() > deadline:
            break
        key = b"k%d-%d" % (tid, i % 5000)
        size = 1 + (i * 7919 + tid * 131) % 20000
        val = value_for(key + b"/%d" % size, size)
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, size, val))
        if recv_until(sock, buf, b"\r\n") != b"STORED\r\n":
            errors.append("set %r failed" % key)
            break
        sock.sendall(b"get %s\r\n" % key)
        header = recv_until(sock, buf, b"\r\n")
        parts = header.split()
        if parts[0] != b"VALUE" or int(parts[3]) != size:
            errors.append("get %r: bad header %r" % (key, header))
            break
        while len(buf) < size + 7:  # data \r\n END\r\n
            buf.extend(sock.recv(65536))
        data = bytes(buf[:size])
        del buf[: size + 7]
        if data != val:
            errors.append("get %r: value differs" % key)
            break
        n += 1
    sock.close()
    done.append(n)


def main():
    port, threads, ops, seconds = (int(a) for a in sys.argv[1:5])
    deadline = time.time() + seconds
    errors, done = [], []
    ts = [threading.Thread(target=worker, args=(port, t, ops, deadline, errors, done))
          for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    total = sum(done)
    print("verified %d set/get pairs over %d threads" % (total, threads))
    if errors or total == 0:
        print("\n".join(errors[:10]) or "no operations completed")
        sys.exit(1)


if __name__ == "__main__":
    main()
