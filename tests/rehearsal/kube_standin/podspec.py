"""A pod's container as the kubelet would start it, translated to Docker: env, command, volumes, resources, security.

Everything here is a pure function of the pod object and the Secrets/ConfigMaps it refers to, so the translation is
tested without a Docker engine. A reference to something missing raises `ContainerConfigError` (the kubelet's
`CreateContainerConfigError`: the pod stays Pending and is retried); something the stand-in cannot run raises
`Unsupported` (the stand-in refuses the object when it is created, instead of running it differently).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

from .quantity import byte_count, cpu_cores

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_INDEXED = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
SUPPORTED_VOLUMES = ("emptyDir", "hostPath", "persistentVolumeClaim", "secret", "configMap")


class ContainerConfigError(Exception):
    """A referenced Secret/ConfigMap/key is missing: the kubelet reports CreateContainerConfigError and retries."""


class Unsupported(Exception):
    """The stand-in cannot run this part of a pod spec faithfully."""


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion): `$$` is a literal
    `$`, `$(NAME)` is NAME's value when defined and left as written otherwise."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def decode_secret(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def field_value(pod: dict, path: str) -> str:
    """A downward-API fieldRef of the pod."""
    meta = pod["metadata"]
    if path == "metadata.name":
        return meta["name"]
    if path == "metadata.namespace":
        return meta["namespace"]
    if path == "metadata.uid":
        return meta["uid"]
    if path == "spec.nodeName":
        return pod["spec"].get("nodeName", "")
    if path == "spec.serviceAccountName":
        return pod["spec"].get("serviceAccountName", "default")
    if match := _FIELD_INDEXED.match(path):
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    raise Unsupported(f"env fieldRef {path!r} is not supported by the kube stand-in")


@dataclass
class Lookup:
    """Reads Secrets and ConfigMaps of the pod's namespace (None = absent)."""

    secret: callable
    config_map: callable

    def data(self, kind: str, name: str, optional: bool, namespace: str) -> dict[str, str] | None:
        if kind == "secret":
            obj = self.secret(name)
            data = decode_secret(obj) if obj is not None else None
        else:
            obj = self.config_map(name)
            data = dict(obj.get("data") or {}) if obj is not None else None
        if data is None and not optional:
            label = "secret" if kind == "secret" else "configmap"
            raise ContainerConfigError(f'{label} "{name}" not found')
        return data


def container_env(pod: dict, container: dict, lookup: Lookup) -> dict[str, str]:
    """envFrom (in order), then env (later entries override), each value expanded against what came before."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
            if key in source:
                ref = source[key]
                data = lookup.data(kind, ref["name"], bool(ref.get("optional")), namespace) or {}
                for name, value in data.items():
                    if _ENV_NAME.match(prefix + name):  # the kubelet skips invalid names (an event, no failure)
                        env[prefix + name] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind, ref = ("secret", source["secretKeyRef"]) if "secretKeyRef" in source else (
                "configmap", source["configMapKeyRef"])
            optional = bool(ref.get("optional"))
            data = lookup.data(kind, ref["name"], optional, namespace)
            if data is not None and ref["key"] in data:
                env[name] = data[ref["key"]]
            elif not optional:
                what = "Secret" if kind == "secret" else "ConfigMap"
                raise ContainerConfigError(f"couldn't find key {ref['key']} in {what} {namespace}/{ref['name']}")
        else:
            raise Unsupported(f"env {name}: valueFrom {sorted(source)} is not supported by the kube stand-in")
    return env


def check_supported(pod_spec: dict, where: str) -> None:
    """Refuse, at create time, what the stand-in would otherwise run differently from a kubelet."""
    if pod_spec.get("restartPolicy", "Always") != "Never":
        raise Unsupported(f"{where}: restartPolicy {pod_spec.get('restartPolicy')!r}: the kube stand-in runs "
                          "restartPolicy Never only (what Jobs with a podFailurePolicy require)")
    if pod_spec.get("initContainers") or len(pod_spec.get("containers") or []) != 1:
        raise Unsupported(f"{where}: the kube stand-in runs pods of exactly one container and no init containers")
    for volume in pod_spec.get("volumes") or []:
        kinds = [k for k in volume if k != "name"]
        if not kinds or kinds[0] not in SUPPORTED_VOLUMES:
            raise Unsupported(f"{where}: volume {volume.get('name')!r} of type {kinds} is not supported by the kube "
                              f"stand-in (supported: {', '.join(SUPPORTED_VOLUMES)})")
    container = pod_spec["containers"][0]
    for mount in container.get("volumeMounts") or []:
        if mount.get("subPath") or mount.get("subPathExpr"):
            raise Unsupported(f"{where}: volumeMount {mount['name']!r}: subPath is not supported by the kube stand-in")
    for var in container.get("env") or []:
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                            "spec.serviceAccountName") and not _FIELD_INDEXED.match(path):
                raise Unsupported(f"{where}: env {var['name']}: fieldRef {path!r} is not supported by the kube "
                                  "stand-in")
        elif source and not ({"secretKeyRef", "configMapKeyRef"} & set(source)):
            raise Unsupported(f"{where}: env {var['name']}: valueFrom {sorted(source)} is not supported by the kube "
                              "stand-in")


@dataclass
class DockerContainerSpec:
    """Keyword arguments for docker's `containers.create`, plus what the stand-in must prepare or clean up."""

    kwargs: dict
    named_volumes: list[str] = field(default_factory=list)  # emptyDir volumes: removed with the pod
    files: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)  # volume name -> {path: (text, mode)}
    host_dirs: list[str] = field(default_factory=list)  # hostPath DirectoryOrCreate


def security_kwargs(pod_spec: dict, container: dict, image_user: str) -> dict:
    """securityContext -> docker options; runAsNonRoot is checked as the kubelet checks it (numeric uid != 0)."""
    pod_ctx = pod_spec.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
    non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
    kwargs: dict = {}
    if uid is not None:
        kwargs["user"] = f"{uid}:{gid}" if gid is not None else str(uid)
    if non_root:
        effective = uid if uid is not None else (image_user.split(":")[0] or "0")
        if str(effective) == "0" or (uid is None and not str(effective).isdigit()):
            raise ContainerConfigError("container has runAsNonRoot and image will run as root" if str(effective) == "0"
                                       else f"container has runAsNonRoot and image has non-numeric user "
                                            f"({effective}), cannot verify user is non-root")
    groups = [str(g) for g in pod_ctx.get("supplementalGroups") or []]
    if pod_ctx.get("fsGroup") is not None:
        groups.append(str(pod_ctx["fsGroup"]))
    if groups:
        kwargs["group_add"] = groups
    if ctx.get("readOnlyRootFilesystem"):
        kwargs["read_only"] = True
    caps = ctx.get("capabilities") or {}
    if caps.get("drop"):
        kwargs["cap_drop"] = list(caps["drop"])
    if caps.get("add"):
        kwargs["cap_add"] = list(caps["add"])
    if ctx.get("privileged"):
        kwargs["privileged"] = True
    security_opt = []
    if ctx.get("allowPrivilegeEscalation") is False:
        security_opt.append("no-new-privileges")
    seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        security_opt.append("seccomp=unconfined")
    elif seccomp == "Localhost":
        raise Unsupported("seccompProfile Localhost is not supported by the kube stand-in")
    # RuntimeDefault (and unset, which containerd also runs under its default profile here) = Docker's default.
    if security_opt:
        kwargs["security_opt"] = security_opt
    return kwargs


def resource_kwargs(container: dict) -> dict:
    """Limits -> cgroup limits (cpu quota, memory without swap), requests.cpu -> cpu shares, as the kubelet does."""
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    kwargs: dict = {}
    if "cpu" in limits:
        kwargs["nano_cpus"] = int(cpu_cores(limits["cpu"], "resources.limits.cpu") * 1e9)
    cpu_request = requests.get("cpu", limits.get("cpu"))
    if cpu_request is not None:
        kwargs["cpu_shares"] = max(2, int(cpu_cores(cpu_request, "resources.requests.cpu") * 1024))
    if "memory" in limits:
        kwargs["mem_limit"] = byte_count(limits["memory"], "resources.limits.memory")
        kwargs["memswap_limit"] = kwargs["mem_limit"]
    return kwargs


def _run_as(pod_spec: dict, container: dict) -> tuple[int, int] | None:
    """(uid, gid) the container runs as when its securityContext (or the pod's) names a uid."""
    pod_ctx = pod_spec.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    if uid is None:
        return None
    gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
    return int(uid), int(gid if gid is not None else uid)


def volume_kwargs(pod: dict, container: dict, lookup: Lookup, pvc_volume, pod_volume) -> DockerContainerSpec:
    """volumes + volumeMounts -> docker mounts. `pvc_volume(claim)` and `pod_volume(volume_name)` name the Docker
    volumes backing a claim and a pod's emptyDir."""
    from docker.types import Mount

    namespace = pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    spec = DockerContainerSpec(kwargs={})
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise ContainerConfigError(f"volumeMount {mount['name']!r} names no volume of the pod")
        target, read_only = mount["mountPath"], bool(mount.get("readOnly"))
        if "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            if empty.get("medium") == "Memory":
                size = byte_count(empty["sizeLimit"], f"volume {mount['name']}: sizeLimit") \
                    if empty.get("sizeLimit") else None
                # The kubelet makes every emptyDir mode 0777 (pkg/volume/emptydir: a host dir bind-mounted, so the
                # image's directory at that path does not matter). Docker 20.10 gives a tmpfs at a path the image
                # has the image directory's owner and mode whatever tmpfs-mode says (root 0755: a non-root pod
                # could not write it), but honours uid=/gid= options: the tmpfs is the pod user's, writable by it
                # as the kubelet's 0777 directory is.
                options = [f"size={size}"] if size else []
                owner = _run_as(pod["spec"], container)
                if not read_only and owner is not None:
                    options += [f"uid={owner[0]}", f"gid={owner[1]}", "mode=0777"]
                    spec.kwargs.setdefault("tmpfs", {})[target] = ",".join(options)
                    continue
                mounts.append(Mount(target, None, type="tmpfs", read_only=read_only, tmpfs_size=size,
                                    tmpfs_mode=0o777))
            else:
                name = pod_volume(mount["name"])
                spec.named_volumes.append(name)
                mounts.append(Mount(target, name, type="volume", read_only=read_only))
        elif "hostPath" in volume:
            host = volume["hostPath"]
            kind = host.get("type", "")
            if kind == "DirectoryOrCreate":
                spec.host_dirs.append(host["path"])
            elif kind == "Directory" and not Path(host["path"]).is_dir():
                raise ContainerConfigError(f"hostPath type check failed: {host['path']} is not a directory")
            mounts.append(Mount(target, host["path"], type="bind", read_only=read_only))
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            mounts.append(Mount(target, pvc_volume(claim["claimName"]), type="volume",
                                read_only=read_only or bool(claim.get("readOnly"))))
        elif "secret" in volume or "configMap" in volume:
            kind, ref = ("secret", volume["secret"]) if "secret" in volume else ("configmap", volume["configMap"])
            name = ref.get("secretName") if kind == "secret" else ref.get("name")
            data = lookup.data(kind, name, bool(ref.get("optional")), namespace) or {}
            mode = ref.get("defaultMode", 0o644)
            files = {}
            if ref.get("items"):
                for item in ref["items"]:
                    if item["key"] not in data:
                        raise ContainerConfigError(f"couldn't find key {item['key']} in {kind} {namespace}/{name}")
                    files[item["path"]] = (data[item["key"]], item.get("mode", mode))
            else:
                files = {key: (value, mode) for key, value in data.items()}
            spec.files[mount["name"]] = files
            mounts.append(Mount(target, mount["name"], type="bind", read_only=True))  # source filled in by the runtime
        else:
            raise Unsupported(f"volume {mount['name']!r} is not supported by the kube stand-in")
    spec.kwargs["mounts"] = mounts
    return spec


def command_and_args(container: dict, env: dict[str, str]) -> dict:
    """`command` replaces the image's ENTRYPOINT (and drops its CMD), `args` replaces CMD; both `$(VAR)`-expanded."""
    kwargs: dict = {}
    if container.get("command"):
        kwargs["entrypoint"] = [expand(part, env) for part in container["command"]]
        kwargs["command"] = [expand(part, env) for part in container.get("args") or []]
    elif container.get("args"):
        kwargs["command"] = [expand(part, env) for part in container["args"]]
    if container.get("workingDir"):
        kwargs["working_dir"] = container["workingDir"]
    return kwargs
