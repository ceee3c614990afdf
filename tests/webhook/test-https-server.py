#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""hami-dra-webhook's HTTPS server (src/webhook/https-server.c) over real TLS, through
tests/webhook/https-test-server: curl and Python's ssl; TLS 1.0/1.1 refused; 64
concurrent clients; 10 MiB bodies; truncated, dropped and malformed requests; every
refusal status; certificate rotation in the kubelet's secret-volume layout (..data
symlink swapped) without a restart, and a broken new certificate that keeps the old one.
Then the short part again under valgrind (leaks and invalid accesses fail it).

Usage: test-https-server.py PATH/TO/https-test-server"""

import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # we ask for TLS 1.0 on purpose

SERVER = sys.argv[1]
failures = []
CHECK_INTERVAL = 1.3  # the server looks at the files at most once a second


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def make_cert(directory, cn):
    """A self-signed P-256 certificate for 127.0.0.1 (tests/fakes/make-certs.sh's recipe)."""
    os.makedirs(directory, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    os.path.join(directory, "tls.key"), "-out", os.path.join(directory, "tls.crt")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(directory, "tls.crt")) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class SecretVolume:
    """tls.crt and tls.key as the kubelet projects a Secret: links into ..data, a link to a
    timestamped directory, swapped atomically by a rename."""

    def __init__(self, root):
        self.root = root
        self.n = 0
        os.makedirs(root)
        for name in ("tls.crt", "tls.key"):
            os.symlink(os.path.join("..data", name), os.path.join(root, name))

    def publish(self, crt, key):
        self.n += 1
        version = f"..v{self.n}"
        os.makedirs(os.path.join(self.root, version))
        for name, data in (("tls.crt", crt), ("tls.key", key)):
            with open(os.path.join(self.root, version, name), "wb") as f:
                f.write(data)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(version, tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Server:
    def __init__(self, tls_dir, wrapper=()):
        self.proc = subprocess.Popen(list(wrapper) + [SERVER, tls_dir], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT="):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.strip().split("=")[1])

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def context(cafile=None, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version:
        # Let this client offer old versions at all (OpenSSL 3 refuses them by default).
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def request(port, method, path, body=None, headers=None, ctx=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx or context(), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def post(port, path, body, ctype="application/json", ctx=None):
    return request(port, "POST", path, body, {"Content-Type": ctype}, ctx)


def peer_cert(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context().wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def raw_tls(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context().wrap_socket(raw)


def answers(srv):
    try:
        status, body, _ = post(srv.port, "/echo", b'{"still":"here"}')
        return srv.alive() and status == 200 and body == b'{"still":"here"}'
    except OSError:
        return False


def is_status(body, code):
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return doc.get("kind") == "Status" and doc.get("code") == code


def test_requests(srv, cafile):
    port = srv.port
    status, body, headers = post(port, "/echo", b'{"apiVersion":"admission.k8s.io/v1"}',
                                 ctx=context(cafile))
    check(status == 200 and body == b'{"apiVersion":"admission.k8s.io/v1"}'
          and headers.get("Content-Type") == "application/json",
          "a valid POST gets its echo (certificate verified)")

    out = subprocess.run(["curl", "-sS", "--cacert", cafile, "-H", "Content-Type: application/json",
                          "-d", '{"curl":true}', "-w", "\n%{http_code}",
                          f"https://127.0.0.1:{port}/echo"], capture_output=True, text=True)
    check(out.returncode == 0 and out.stdout == '{"curl":true}\n200', f"curl gets the echo: {out.stdout!r}")

    status, body, _ = post(port, "/echo", b'{"a":1}', "application/json; charset=utf-8")
    check(status == 200, "application/json with a charset is accepted")
    status, body, _ = request(port, "GET", "/healthz")
    check(status == 200 and json.loads(body) == {"status": "ok"}, "GET /healthz")

    for method, path, body, headers, code, what in [
        ("GET", "/echo", None, {}, 405, "GET on a POST route"),
        ("PUT", "/echo", b"{}", {"Content-Type": "application/json"}, 405, "PUT"),
        ("POST", "/healthz", b"{}", {"Content-Type": "application/json"}, 405, "POST on a GET route"),
        ("POST", "/nope", b"{}", {"Content-Type": "application/json"}, 404, "an unknown path"),
        ("POST", "/echo", b"{}", {"Content-Type": "text/plain"}, 415, "text/plain"),
        ("POST", "/echo", b"{}", {}, 415, "no Content-Type"),
        ("POST", "/echo", b"{}", {"Content-Type": "application/jsonx"}, 415, "application/jsonx"),
        ("POST", "/echo", b"", {"Content-Type": "application/json"}, 400, "an empty body"),
        ("POST", "/echo", b'{"a":', {"Content-Type": "application/json"}, 400, "truncated JSON"),
        ("POST", "/echo", b"\x00\xff\xfe", {"Content-Type": "application/json"}, 400, "binary junk"),
        ("POST", "/fail", b"{}", {"Content-Type": "application/json"}, 500, "a handler that fails"),
    ]:
        status, rbody, rheaders = request(port, method, path, body, headers)
        check(status == code and is_status(rbody, code), f"{what}: {code} with a Status (got {status})")
        if code == 405:
            check("Allow" in rheaders, f"{what}: 405 says what is allowed")

    # A body just at the limit is taken; one byte more is not (3 MiB, the API server's limit).
    limit = 3 * 1024 * 1024
    big = b'"' + b"x" * (limit - 2) + b'"'
    status, body, _ = post(port, "/echo", big)
    check(status == 200 and body == big, "a 3 MiB body (the limit) gets its echo")
    # The 413 comes before the body is read: curl waits for it (Expect: 100-continue).
    with tempfile.NamedTemporaryFile() as f:
        f.write(big + b" ")
        f.flush()
        out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                              "Content-Type: application/json", "--data-binary", f"@{f.name}",
                              f"https://127.0.0.1:{port}/echo"], capture_output=True, text=True)
    check(out.stdout == "413", f"3 MiB + 1 byte: 413 (got {out.stdout!r})")


def test_tls_versions(port):
    for version, name in ((ssl.TLSVersion.TLSv1, "TLS 1.0"), (ssl.TLSVersion.TLSv1_1, "TLS 1.1")):
        try:
            with raw_tls_version(port, version):
                refused = False
        except (ssl.SSLError, ConnectionError):
            refused = True
        check(refused, f"{name} is refused")
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLS 1.2"), (ssl.TLSVersion.TLSv1_3, "TLS 1.3")):
        with raw_tls_version(port, version) as tls:
            check(tls.version() == name.replace(" ", "v"), f"{name} is accepted ({tls.version()})")
    out = subprocess.run(["curl", "-sk", "--tlsv1.1", "--tls-max", "1.1", "--ciphers",
                          "DEFAULT:@SECLEVEL=0", f"https://127.0.0.1:{port}/healthz"],
                         capture_output=True)
    check(out.returncode != 0, "curl --tls-max 1.1 is refused")


def raw_tls_version(port, version):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return context(version=version).wrap_socket(raw)
    except BaseException:
        raw.close()
        raise


def test_concurrency(port, n=64):
    barrier = threading.Barrier(n)

    def one(i):
        body = json.dumps({"client": i, "pad": "y" * (i * 100)}).encode()
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(), timeout=60)
        try:
            conn.connect()
            barrier.wait(timeout=60)
            conn.request("POST", "/echo", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status == 200 and resp.read() == body
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    check(all(results), f"{n} concurrent clients all get their own echo ({sum(results)}/{n})")


def test_large_bodies(srv, tmp):
    port = srv.port
    path = os.path.join(tmp, "ten-mib.json")
    with open(path, "wb") as f:
        f.write(b'"' + b"z" * (10 * 1024 * 1024 - 2) + b'"')
    out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                          "Content-Type: application/json", "--data-binary", f"@{path}",
                          f"https://127.0.0.1:{port}/echo"], capture_output=True, text=True)
    check(out.stdout == "413", f"a 10 MiB body with a Content-Length: 413 (got {out.stdout!r})")

    # Chunked, so the server learns the size only by reading: it counts and drops.
    tls = raw_tls(port)
    tls.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"z" * (1024 * 1024)
    for _ in range(10):
        tls.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    tls.sendall(b"0\r\n\r\n")
    reply = tls.recv(65536)
    tls.close()
    check(reply.startswith(b"HTTP/1.1 413"), f"a 10 MiB chunked body: 413 ({reply[:20]!r})")

    # A declared 10 MiB and no body sent: refused from the headers alone, nothing read.
    for length in (b"10485760", b"99999999999999999999999"):
        tls = raw_tls(port)
        tls.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + length + b"\r\n\r\n")
        try:
            reply = tls.recv(65536)
        except socket.timeout:
            reply = b"(no answer before the body)"
        tls.close()
        check(reply.split(b" ")[1:2] in ([b"413"], [b"400"]),
              f"Content-Length {length.decode()}: refused before the body ({reply[:20]!r})")
    check(answers(srv), "the server answers after the large bodies")


def test_abuse(srv):
    port = srv.port
    # TCP only, then gone; plaintext HTTP to the TLS port; half a ClientHello.
    for payload in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            if payload:
                s.sendall(payload)
    # Over TLS: a body shorter than its Content-Length, then the connection drops.
    tls = raw_tls(port)
    tls.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{\"short\":")
    tls.close()
    # Headers cut in the middle; a dropped connection with a reset.
    tls = raw_tls(port)
    tls.sendall(b"POST /echo HTTP/1.1\r\nContent-Ty")
    tls.close()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = context().wrap_socket(raw)
    tls.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    tls.close()
    # Garbage request lines and headers over TLS.
    for junk in (b"\x00\x01\x02\r\n\r\n", b"POST\r\n\r\n", b"POST /echo HTTP/9.9\r\n\r\n",
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"):
        tls = raw_tls(port)
        tls.sendall(junk)
        try:
            tls.recv(4096)
        except OSError:
            pass
        tls.close()
    time.sleep(0.2)
    check(answers(srv), "the server answers after drops, truncations and junk")


def test_rotation(srv, vol, tmp):
    port = srv.port
    first = peer_cert(port)
    der_b = make_cert(os.path.join(tmp, "b"), "webhook-b")
    vol.publish(read(os.path.join(tmp, "b", "tls.crt")), read(os.path.join(tmp, "b", "tls.key")))
    time.sleep(CHECK_INTERVAL)
    now = peer_cert(port)
    check(now == der_b and now != first, "a new connection sees the rotated certificate")
    check(answers(srv), "the server answers with the rotated certificate")

    vol.publish(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
                read(os.path.join(tmp, "b", "tls.key")))
    time.sleep(CHECK_INTERVAL)
    check(peer_cert(port) == der_b, "a broken certificate keeps the old one")

    make_cert(os.path.join(tmp, "c"), "webhook-c")
    vol.publish(read(os.path.join(tmp, "c", "tls.crt")), read(os.path.join(tmp, "b", "tls.key")))
    time.sleep(CHECK_INTERVAL)
    check(peer_cert(port) == der_b, "a certificate with a key that is not its own keeps the old one")

    vol.publish(read(os.path.join(tmp, "c", "tls.crt")), b"")
    time.sleep(CHECK_INTERVAL)
    check(peer_cert(port) == der_b, "an empty key keeps the old one")

    der_d = make_cert(os.path.join(tmp, "d"), "webhook-d")
    vol.publish(read(os.path.join(tmp, "d", "tls.crt")), read(os.path.join(tmp, "d", "tls.key")))
    time.sleep(CHECK_INTERVAL)
    check(peer_cert(port) == der_d, "a good certificate after broken ones is taken")


def sanitized():
    """ASan and valgrind do not mix: under ASan the first pass is checked by it."""
    with open(SERVER, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__ubsan_handle" in data


def main():
    tmp = tempfile.mkdtemp(prefix="https-server-test.")
    try:
        make_cert(os.path.join(tmp, "a"), "webhook-a")
        vol = SecretVolume(os.path.join(tmp, "secret"))
        vol.publish(read(os.path.join(tmp, "a", "tls.crt")), read(os.path.join(tmp, "a", "tls.key")))

        # A directory without a usable certificate: the server refuses to start.
        os.makedirs(os.path.join(tmp, "empty"))
        out = subprocess.run([SERVER, os.path.join(tmp, "empty")], capture_output=True, text=True,
                             timeout=30)
        check(out.returncode != 0 and "tls.crt" in out.stderr, "no certificate: no start, and it says why")

        srv = Server(vol.root)
        test_requests(srv, os.path.join(tmp, "a", "tls.crt"))
        test_tls_versions(srv.port)
        test_concurrency(srv.port)
        test_large_bodies(srv, tmp)
        test_abuse(srv)
        test_rotation(srv, vol, tmp)
        rc, err = srv.stop()
        check(rc == 0 and "Sanitizer" not in err, f"SIGTERM stops the server cleanly (rc {rc})")

        if sanitized():
            print("skip valgrind: the server is built with a sanitizer, which checks it already")
        elif shutil.which("valgrind") and os.environ.get("HTTPS_TEST_VALGRIND", "1") != "0":
            vol2 = SecretVolume(os.path.join(tmp, "secret2"))
            vol2.publish(read(os.path.join(tmp, "a", "tls.crt")), read(os.path.join(tmp, "a", "tls.key")))
            vg = Server(vol2.root, ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                                    "--errors-for-leak-kinds=definite,indirect"])
            status, body, _ = post(vg.port, "/echo", b'{"under":"valgrind"}')
            check(status == 200, "under valgrind: echo")
            test_abuse(vg)
            status, _, _ = post(vg.port, "/fail", b"{}")
            check(status == 500, "under valgrind: a failing handler")
            test_large_bodies(vg, tmp)
            test_concurrency(vg.port, 8)
            test_rotation(vg, vol2, os.path.join(tmp, "vg"))
            rc, err = vg.stop()
            check(rc == 0, f"under valgrind: no errors, no leaks (rc {rc}){err[-2000:] if rc else ''}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        print(f"{len(failures)} failed:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
