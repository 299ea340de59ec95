"""The Kubernetes REST API in front of `Cluster`: the paths and shapes the official `kubernetes` client uses.

    /version
    /api/v1/namespaces[/{name}]
    /api/v1/namespaces/{ns}/{pods|services|secrets|configmaps|persistentvolumeclaims|serviceaccounts}[/{name}]
    /api/v1/namespaces/{ns}/pods/{name}/status
    /api/v1/namespaces/{ns}/pods/{name}/log   ?follow&timestamps&sinceSeconds&sinceTime&tailLines&container
    /api/v1/namespaces/{ns}/pods/{name}/attach  ?stdin&container, WebSocket (v5/v4.channel.k8s.io): channel 0 is
                                                written to the container's stdin; stdout/stderr are not served
    /api/v1/{pods|services|secrets}, /apis/batch/v1/jobs              (all namespaces)
    /apis/batch/v1/namespaces/{ns}/jobs[/{name}[/status]]
    /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies[/{name}]   (deny-all policies only, see cluster.py)
    /standin/v1/namespaces/{ns}/pods/{name}/disrupt   POST {"gracePeriodSeconds": N}   (not Kubernetes: the hook
                                                      that plays a preemption, for operators and tests in other
                                                      processes)

GET (read and list with labelSelector/fieldSelector), POST (create), DELETE (with a DeleteOptions body or the
propagationPolicy/gracePeriodSeconds query). Requests need `Authorization: Bearer <token>` (the kubeconfig's).
Follow-mode logs are streamed with chunked transfer encoding until the container ends, as the kubelet does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .cluster import Cluster
from .objects import RESOURCES, ApiError, kubelet_timestamp

_CORE = r"^/api/v1"
_NAMESPACED = "pods|services|secrets|configmaps|persistentvolumeclaims|serviceaccounts"
ROUTES = [
    (re.compile(r"^/version/?$"), "version"),
    (re.compile(r"^/(healthz|readyz|livez)$"), "health"),
    (re.compile(_CORE + r"/namespaces/?$"), "namespaces"),
    (re.compile(_CORE + r"/namespaces/(?P<name>[^/]+)$"), "namespace"),
    (re.compile(_CORE + rf"/namespaces/(?P<ns>[^/]+)/(?P<plural>{_NAMESPACED})$"), "collection"),
    (re.compile(_CORE + rf"/namespaces/(?P<ns>[^/]+)/(?P<plural>{_NAMESPACED})/(?P<name>[^/]+)(?P<status>/status)?$"),
     "object"),
    (re.compile(_CORE + r"/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$"), "log"),
    (re.compile(_CORE + r"/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/attach$"), "attach"),
    (re.compile(_CORE + rf"/(?P<plural>{_NAMESPACED})$"), "all_namespaces"),
    (re.compile(r"^/apis/batch/v1/(?P<plural>jobs)$"), "all_namespaces"),
    (re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>jobs)$"), "collection"),
    (re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>jobs)/(?P<name>[^/]+)(?P<status>/status)?$"),
     "object"),
    (re.compile(r"^/apis/networking.k8s.io/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>networkpolicies)$"), "collection"),
    (re.compile(r"^/apis/networking.k8s.io/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>networkpolicies)/(?P<name>[^/]+)$"),
     "object"),
    (re.compile(r"^/standin/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/disrupt$"), "disrupt"),
]


def _flag(query: dict, key: str) -> bool:
    """A boolean query parameter (the Python client sends True as "True", kubectl as "true")."""
    return query.get(key, "").lower() in ("true", "1")


def _list_kind(plural: str) -> str:
    return RESOURCES[plural].kind + "List"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive (the client's connection pool) and chunked log streams
    server: StandinHTTPServer

    def log_message(self, fmt, *args):  # quiet: the client retries and polls a lot
        pass

    # --- plumbing ---------------------------------------------------------------------------------------------------
    def _send_json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body is not a JSON object")
        return body

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            token = self.server.token
            scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
            # The scheme is case-insensitive (RFC 7235): the client's in-cluster loader sends "bearer <token>".
            if token and (scheme.lower() != "bearer" or credentials.strip() != token) and not url.path.endswith("z"):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            for pattern, route in ROUTES:
                match = pattern.match(url.path)
                if match:
                    getattr(self, f"_{route}")(method, query, **match.groupdict())
                    return
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({method} {url.path})")
        except ApiError as err:
            self._send_json(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a stand-in bug: answer 500 with the error, as an API server would
            self._send_json(500, ApiError(500, "InternalError", f"kube stand-in: {type(exc).__name__}: {exc}").status())

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    @property
    def cluster(self) -> Cluster:
        return self.server.cluster

    @staticmethod
    def _unsupported(method: str, what: str):
        return ApiError(405, "MethodNotAllowed", f"the kube stand-in does not support {method} on {what}")

    # --- routes -----------------------------------------------------------------------------------------------------
    def _version(self, method, query):
        self._send_json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-valley-standin",
                              "platform": "linux/amd64"})

    def _health(self, method, query, **_):
        data = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _list(self, plural: str, namespace: str | None, query: dict) -> None:
        if _flag(query, "watch"):
            raise ApiError(400, "BadRequest", "the kube stand-in does not support watch; poll with list instead")
        items = self.cluster.list(plural, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        resource = RESOURCES[plural]
        self._send_json(200, {"kind": _list_kind(plural), "apiVersion": resource.api_version,
                              "metadata": {"resourceVersion": str(self.cluster._rv)}, "items": items})

    def _namespaces(self, method, query):
        if method == "GET":
            return self._list("namespaces", None, query)
        if method == "POST":
            return self._send_json(201, self.cluster.create("namespaces", None, self._body()))
        raise self._unsupported(method, "namespaces")

    def _namespace(self, method, query, name):
        if method == "GET":
            return self._send_json(200, self.cluster.get("namespaces", None, name))
        if method == "DELETE":
            return self._send_json(200, self.cluster.delete("namespaces", None, name, None))
        raise self._unsupported(method, "a namespace")

    def _collection(self, method, query, ns, plural):
        if method == "GET":
            return self._list(plural, ns, query)
        if method == "POST":
            return self._send_json(201, self.cluster.create(plural, ns, self._body()))
        raise self._unsupported(method, plural)

    def _all_namespaces(self, method, query, plural):
        if method != "GET":
            raise self._unsupported(method, f"{plural} of all namespaces")
        self._list(plural, None, query)

    def _object(self, method, query, ns, plural, name, status=None):
        if method == "GET":
            return self._send_json(200, self.cluster.get(plural, ns, name))
        if method == "DELETE" and not status:
            body = self._body()
            propagation = body.get("propagationPolicy") or query.get("propagationPolicy")
            if body.get("orphanDependents") is True or _flag(query, "orphanDependents"):
                propagation = "Orphan"
            grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
            answer = self.cluster.delete(plural, ns, name, propagation, float(grace) if grace is not None else None)
            return self._send_json(200, answer)
        raise self._unsupported(method, f"{plural}{status or ''}")

    def _disrupt(self, method, query, ns, name):
        if method != "POST":
            raise self._unsupported(method, "disrupt")
        grace = self._body().get("gracePeriodSeconds")
        self.cluster.disrupt(ns, name, float(grace) if grace is not None else None)
        self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _attach(self, method, query, ns, name):
        """`kubectl attach -i` over a WebSocket (RFC 6455; the kubelet's channel protocols): stdin only."""
        if (self.headers.get("Upgrade") or "").lower() != "websocket":
            raise ApiError(400, "BadRequest", "attach needs a WebSocket upgrade (the kube stand-in serves no SPDY)")
        if _flag(query, "stdout") or _flag(query, "stderr") or _flag(query, "tty"):
            raise ApiError(400, "BadRequest", "the kube stand-in attaches stdin only (stdout/stderr: read the log)")
        if not _flag(query, "stdin"):
            raise ApiError(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
        protocol = next((p for p in ("v5.channel.k8s.io", "v4.channel.k8s.io") if p in offered), None)
        if protocol is None:
            raise ApiError(400, "BadRequest", f"no supported channel protocol among {offered}")
        sink = self.cluster.attach_stdin(ns, name, query.get("container"))
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] +
                                                "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        try:
            message = b""
            while True:
                fin, opcode, payload = self._ws_frame()
                if opcode == 0x8 or opcode is None:  # close (or the peer went away)
                    break
                if opcode == 0x9:  # ping
                    self._ws_send(0xA, payload)
                    continue
                if opcode not in (0x0, 0x1, 0x2):
                    continue
                message += payload
                if not fin:
                    continue
                channel, data, message = message[:1], message[1:], b""
                if channel == b"\x00":
                    sink.sendall(data)
                elif channel == b"\xff" and data[:1] == b"\x00":  # v5: close stdin
                    sink.shutdown(socket.SHUT_WR)
            try:
                self._ws_send(0x8, b"")
            except OSError:
                pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sink.close()
            self.close_connection = True

    def _ws_frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            return True, None, b""
        fin, opcode, masked, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", self.rfile.read(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", self.rfile.read(8))
        mask = self.rfile.read(4) if masked else b""
        payload = self.rfile.read(length)
        if mask and payload:
            key = (mask * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        return bool(fin), opcode, payload

    def _ws_send(self, opcode: int, payload: bytes) -> None:
        head = bytes([0x80 | opcode])
        if len(payload) < 126:
            head += bytes([len(payload)])
        elif len(payload) < 1 << 16:
            head += bytes([126]) + struct.pack(">H", len(payload))
        else:
            head += bytes([127]) + struct.pack(">Q", len(payload))
        self.wfile.write(head + payload)
        self.wfile.flush()

    def _log(self, method, query, ns, name):
        if method != "GET":
            raise self._unsupported(method, "pods/log")
        pod = self.cluster.get("pods", ns, name)
        container = pod["spec"]["containers"][0]["name"]
        if query.get("container") not in (None, container):
            raise ApiError(400, "BadRequest", f"container {query['container']} is not valid for pod {name}")
        if _flag(query, "previous"):
            raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')
        rt = self.cluster.pods.get((ns, name))
        if rt is None or not rt.started:
            state = (pod["status"].get("containerStatuses") or [{}])[0].get("state", {})
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        follow = _flag(query, "follow")
        stamps = _flag(query, "timestamps")
        since_ns = 0
        if query.get("sinceSeconds"):
            since_ns = time.time_ns() - int(query["sinceSeconds"]) * 1_000_000_000
        elif query.get("sinceTime"):
            since_ns = int(datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00")).timestamp() * 1e9)
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        plog = rt.log

        def render(entries):
            return b"".join(((kubelet_timestamp(ts) + " ") if stamps else "").encode() + text.encode() + b"\n"
                            for ts, text in entries)

        with plog.cond:
            entries = [e for e in plog.lines if e[0] >= since_ns]
            if tail is not None:
                entries = entries[-tail:] if tail else []
            sent = len(plog.lines)
        if not follow:
            data = render(entries)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        chunk(render(entries))
        while True:
            with plog.cond:
                if len(plog.lines) == sent and not plog.done:
                    plog.cond.wait(1.0)
                fresh = plog.lines[sent:]
                sent += len(fresh)
                done = plog.done and sent == len(plog.lines)
            chunk(render(fresh))
            if done or self.server.stopping.is_set():
                break
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class StandinHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, cluster: Cluster, token: str | None, tls: tuple[str, str] | None = None):
        super().__init__(address, Handler)
        self.cluster, self.token = cluster, token
        self.stopping = threading.Event()
        if tls is not None:  # (certificate, key): HTTPS, for in-cluster clients
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
