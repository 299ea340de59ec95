"""API objects as the Kubernetes API server stores them: resource names, errors, metadata defaults, selectors."""

from __future__ import annotations

import random
import re
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str = ""  # "" = the core group
    version: str = "v1"
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How the API server names the resource in its messages: `pods`, `jobs.batch`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = {
    r.plural: r
    for r in (
        Resource("namespaces", "Namespace", namespaced=False),
        Resource("pods", "Pod"),
        Resource("services", "Service"),
        Resource("secrets", "Secret"),
        Resource("configmaps", "ConfigMap"),
        Resource("persistentvolumeclaims", "PersistentVolumeClaim"),
        Resource("serviceaccounts", "ServiceAccount"),
        Resource("jobs", "Job", group="batch"),
        Resource("networkpolicies", "NetworkPolicy", group="networking.k8s.io"),
    )
}


class ApiError(Exception):
    """An error the API answers with a `Status` object (and that HTTP code)."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found',
                    {"name": name, "group": resource.group, "kind": resource.plural})


def invalid(resource: Resource, name: str, why: str) -> ApiError:
    return ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: {why}',
                    {"name": name, "group": resource.group, "kind": resource.kind})


def now_rfc3339() -> str:
    """Seconds resolution, as the API server writes metav1.Time."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubelet_timestamp(ns: int) -> str:
    """The fixed-width RFC 3339 timestamp (nanoseconds) the kubelet puts before each log line with timestamps=true."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: no vowels, no 0/1/3


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_SUFFIX_CHARS) for _ in range(n))


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_name(resource: Resource, name: str) -> None:
    """The name rules of the API server: DNS-1035 labels for Services, DNS-1123 subdomains otherwise."""
    if resource.plural in ("services", "namespaces"):
        if len(name) > 63 or not _DNS_LABEL.match(name) or (resource.plural == "services" and name[0].isdigit()):
            raise invalid(resource, name, f'metadata.name: Invalid value: "{name}": a DNS-1035 label must consist of '
                                          "lower case alphanumeric characters or '-', start with an alphabetic "
                                          "character, and end with an alphanumeric character")
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise invalid(resource, name, f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                                      "consist of lower case alphanumeric characters, '-' or '.'")


def stamp_metadata(resource: Resource, body: dict, namespace: str | None, resource_version: int) -> dict:
    """Fill in what the API server sets on create: name from generateName, namespace, uid, timestamps, version."""
    meta = body.setdefault("metadata", {})
    if not meta.get("name"):
        if not meta.get("generateName"):
            raise ApiError(422, "Invalid", f"{resource.kind}: metadata.name or metadata.generateName is required")
        meta["name"] = meta["generateName"] + random_suffix()
    check_name(resource, meta["name"])
    if resource.namespaced:
        if meta.get("namespace") not in (None, namespace):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent "
                                              "on the request")
        meta["namespace"] = namespace
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    meta["resourceVersion"] = str(resource_version)
    meta.setdefault("generation", 1)
    body["kind"], body["apiVersion"] = resource.kind, resource.api_version
    return body


# --- label selectors ------------------------------------------------------------------------------------------------
_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


def parse_selector(selector: str | None):
    """A label selector string -> predicate over a labels dict (equality-, set-based and existence terms)."""
    checks = []
    for term in _split_terms(selector or ""):
        term = term.strip()
        if match := _SET_TERM.match(term):
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            absent = term[1:].strip()
            checks.append(lambda labels, k=absent: k not in labels)
        elif term and all(c in string.ascii_letters + string.digits + "-_./" for c in term):
            checks.append(lambda labels, k=term: k in labels)
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
    return lambda labels: all(check(labels or {}) for check in checks)


def parse_field_selector(selector: str | None):
    """metadata.name / metadata.namespace / status.phase equality terms (what kubectl and clients commonly use)."""
    checks = []
    for term in _split_terms(selector or ""):
        negate = "!=" in term
        key, value = (s.strip() for s in term.replace("!=", "=").replace("==", "=").split("=", 1))
        path = key.split(".")
        if key not in ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"):
            raise ApiError(400, "BadRequest", f'field label not supported: "{key}"')

        def check(obj, path=path, value=value, negate=negate):
            node = obj
            for part in path:
                node = (node or {}).get(part)
            return (node == value) != negate

        checks.append(check)
    return lambda obj: all(check(obj) for check in checks)
