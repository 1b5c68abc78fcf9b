"""The official Python client's stream helpers against wasmkube: exec (a
command's output, stderr and exit code; an interactive session fed line by
line) and port-forward (two ports of one pod, a refused one).

Usage: python_streams.py KUBECONFIG POD WEB_POD. Prints one JSON line:
{"checks": N, "failures": [...]}.
"""

import json
import sys
import time

from kubernetes import client, config
from kubernetes.stream import portforward, stream

checks = 0
failures = []


def expect(condition, message):
    global checks
    checks += 1
    if not condition:
        failures.append(message)


def exec_command(core, pod):
    resp = stream(core.connect_get_namespaced_pod_exec, pod, "default",
                  command=["sh", "-c", "echo out; echo err >&2; exit 3"],
                  stdout=True, stderr=True, stdin=False, tty=False,
                  _preload_content=False)
    resp.run_forever(timeout=30)
    out, err = resp.read_stdout(), resp.read_stderr()
    expect(out == "out\n", f"exec stdout {out!r}")
    expect(err == "err\n", f"exec stderr {err!r}")
    expect(resp.returncode == 3, f"exec exit code {resp.returncode!r}")
    resp.close()

    # The helper's simplest form: output as one string.
    text = stream(core.connect_get_namespaced_pod_exec, pod, "default",
                  command=["echo", "hello"], stdout=True, stderr=True, stdin=False, tty=False)
    expect(text == "hello\n", f"exec preloaded {text!r}")


def exec_interactive(core, pod):
    resp = stream(core.connect_get_namespaced_pod_exec, pod, "default",
                  command=["sh", "-c", "while read line; do echo \"got $line\"; done"],
                  stdout=True, stderr=True, stdin=True, tty=False,
                  _preload_content=False)
    for word in ["one", "two"]:
        resp.write_stdin(word + "\n")
        seen = ""
        deadline = time.time() + 30
        while f"got {word}\n" not in seen and time.time() < deadline:
            resp.update(timeout=1)
            seen += resp.read_stdout() if resp.peek_stdout() else ""
        expect(seen == f"got {word}\n", f"interactive answer to {word!r}: {seen!r}")
    resp.close()


def ask(sock):
    sock.setblocking(True)
    sock.settimeout(30)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")


def answer(sock):
    response = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        response += data
    sock.close()
    return response


def port_forward(core, web):
    # The session ends when every port's connection has: ask on both
    # before reading either to its end.
    pf = portforward(core.connect_get_namespaced_pod_portforward, web, "default", ports="80,8081")
    sockets = {port: pf.socket(port) for port in (80, 8081)}
    for sock in sockets.values():
        ask(sock)
    for port, sock in sockets.items():
        response = answer(sock)
        expect(response.startswith(b"HTTP/1.1 200 OK"), f"port-forward {port}: {response[:80]!r}")
        expect(b"Welcome to http-server!" in response, f"port-forward {port} body")
        expect(pf.error(port) is None, f"port-forward {port} error {pf.error(port)!r}")
    pf.close()

    pf = portforward(core.connect_get_namespaced_pod_portforward, web, "default", ports="81")
    sock = pf.socket(81)
    try:
        ask(sock)
    except (BrokenPipeError, ConnectionResetError):
        # The refusal may close the local end before the request is sent.
        pass
    try:
        response = answer(sock)
    except ConnectionResetError:
        response = b""
    error = pf.error(81) or ""
    expect(response == b"", f"a refused port gives no data: {response[:80]!r}")
    expect("connection refused" in error, f"a refused port's error: {error!r}")
    pf.close()


def main():
    config.load_kube_config(config_file=sys.argv[1])
    core = client.CoreV1Api()
    exec_command(core, sys.argv[2])
    exec_interactive(core, sys.argv[2])
    port_forward(core, sys.argv[3])
    print(json.dumps({"checks": checks, "failures": failures}))


if __name__ == "__main__":
    main()
