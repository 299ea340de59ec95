"""`python -m tests.rehearsal.kube_standin --port N`: serve the stand-in until interrupted (see __init__.py)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from . import KubeStandin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.rehearsal.kube_standin", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="API port, HTTP (0: any free port)")
    parser.add_argument("--https-port", type=int, default=0, help="API port, HTTPS, for in-cluster clients (0: any)")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--kubeconfig-dir", default=None, help="where to write the two kubeconfigs")
    parser.add_argument("--runtime", action="append", default=[], metavar="CLASS=DOCKER_RUNTIME",
                        help="map a runtimeClassName to a Docker runtime (repeatable)")
    parser.add_argument("--network-prefix", default="valley-standin")
    parser.add_argument("--namespace", action="append", default=None,
                        help="namespaces that exist from the start (default: default, valley)")
    parser.add_argument("--token", default=None, help="bearer token (default: random)")
    parser.add_argument("--reap-orphans", action="store_true",
                        help="only remove the containers, volumes and networks of stand-ins whose process is gone")
    args = parser.parse_args(argv)
    if args.reap_orphans:
        from .cluster import reap_orphans

        print(f"removed {reap_orphans()} objects of dead stand-ins", flush=True)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runtimes = dict(item.split("=", 1) for item in args.runtime)
    standin = KubeStandin(runtimes, args.network_prefix, port=args.port, bind=args.bind,
                          kubeconfig_dir=args.kubeconfig_dir, token=args.token, https_port=args.https_port,
                          namespaces=tuple(args.namespace or ("default", "valley")))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with standin:
        print(f"kube stand-in serving on {args.bind}:{standin.port}", flush=True)
        print(f"kubeconfig (host):       {standin.kubeconfig_host}", flush=True)
        print(f"kubeconfig (containers): {standin.kubeconfig_containers}", flush=True)
        print(f"in-cluster: HTTPS port {standin.https_port}, service account files "
              f"{standin.service_account_dir('valley')} (mount at /var/run/secrets/kubernetes.io/serviceaccount)",
              flush=True)
        stop.wait()
    print("kube stand-in stopped; its containers, volumes and networks are removed", flush=True)


if __name__ == "__main__":
    main()
