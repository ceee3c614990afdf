#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Talk to hami-dra-plugin's sockets the way the kubelet's first contact does.

  client.py getinfo SOCKET              GetInfo on the registration socket (gRPC); prints the reply
  client.py line SOCKET [REQUEST]       the system suite's stand-in daemon: sends REQUEST ("hello"),
                                        reads one line
  client.py time MODE SOCKET            one call; prints CLOCK_MONOTONIC ns before the connect
                                        and after the answer (for bench/cold-start.sh)
  client.py loop MODE SOCKET SECONDS    one new connection after another for SECONDS;
                                        prints "calls=N errors=M peers=K" (K: distinct replies' pids)

Exit status 0 when every call was answered. GetInfo is sent without generated stubs:
an empty InfoRequest, and the PluginInfo reply is decoded by hand (fields 1-4).
"""
import socket
import sys
import time


def decode_plugin_info(data):
    fields, i = {}, 0
    names = {1: "type", 2: "name", 3: "endpoint", 4: "supported_versions"}
    while i < len(data):
        key = data[i]
        i += 1
        if key & 7 != 2:
            raise ValueError("unexpected wire type in PluginInfo")
        length, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        value = data[i:i + length].decode()
        i += length
        name = names.get(key >> 3, f"field{key >> 3}")
        if name == "supported_versions":
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    return fields


def getinfo(path, timeout=5.0):
    import grpc  # Debian's python3-grpcio

    with grpc.insecure_channel("unix:" + path) as ch:
        call = ch.unary_unary("/pluginregistration.Registration/GetInfo")
        reply = call(b"", timeout=timeout, wait_for_ready=True)
    info = decode_plugin_info(reply)
    return f"type={info.get('type')} name={info.get('name')} endpoint={info.get('endpoint')} " \
           f"versions={','.join(info.get('supported_versions', []))}"


def line(path, request="hello", timeout=5.0):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(request.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ConnectionError("connection closed without an answer")
    return data.decode().strip()


def loop(mode, path, seconds):
    calls = errors = 0
    peers = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            reply = getinfo(path) if mode == "getinfo" else line(path)
            calls += 1
            for word in reply.split():
                if word.startswith("pid="):
                    peers.add(word)
        except Exception as e:  # every failure counts, and is shown
            errors += 1
            print(f"error: {e}", file=sys.stderr)
            time.sleep(0.1)
    print(f"calls={calls} errors={errors} peers={len(peers)}")
    return 0 if errors == 0 and calls > 0 else 1


def main(argv):
    if len(argv) >= 3 and argv[1] == "getinfo":
        print(getinfo(argv[2]))
        return 0
    if len(argv) >= 3 and argv[1] == "line":
        print(line(argv[2], argv[3] if len(argv) > 3 else "hello"))
        return 0
    if len(argv) == 4 and argv[1] == "time":
        if argv[2] == "getinfo":
            import grpc  # noqa: F401  (imported before the clock starts)
        t0 = time.monotonic_ns()
        getinfo(argv[3]) if argv[2] == "getinfo" else line(argv[3])
        print(t0, time.monotonic_ns())
        return 0
    if len(argv) == 5 and argv[1] == "loop":
        return loop(argv[2], argv[3], float(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
