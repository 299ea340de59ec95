"""The Dagster deployment of the rehearsal: what the Helm chart (k8s/helm/dagster-values.yaml) stands up, on one machine.

- `PostgresServer`: Debian's PostgreSQL 15 in a scratch folder; run, event-log and schedule storage, as the chart's
  `postgresql` section configures (dagster-postgres).
- `DagsterDeployment`: the code location served by `dagster api grpc` in a container of the trainer image (the
  chart's user deployment), `dagster-webserver` and `dagster-daemon` on the host reading the same instance, and the
  runs launched by dagster-docker's `DockerRunLauncher` into containers of the trainer image with the env a run pod
  gets from the chart (`envSecrets`: the hub token as HF_TOKEN, the object-store credentials; the profile). Run
  containers use the host's network namespace, so the services on 127.0.0.1 (Postgres, S3, the cluster's API) are
  where a run pod finds them in-cluster; the Job pods live on the stand-in's Docker network.

This is test code: it plays the cluster's part. The product code paths (the code location, the run worker, the
launcher, the entrypoints) run unchanged inside the containers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.netutil import free_port, http_json, reset_signals, wait_for_code_location

PG_BIN = Path(os.environ.get("VALLEY_PG_BIN", "/usr/lib/postgresql/15/bin"))
BIN = Path(sys.executable).parent
RUN_LABEL = "valley.rehearsal"


def postgres_available() -> tuple[bool, str]:
    if not (PG_BIN / "initdb").exists():
        return False, f"PostgreSQL is not installed ({PG_BIN}/initdb missing; apt-get install postgresql)"
    return True, ""


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>, trust auth, database `dagster` owned by `dagster`.

    PostgreSQL refuses to run as root, so when the tests run as root the cluster runs as the `postgres` system user
    that Debian's package creates.
    """

    def __init__(self, port: int | None = None):
        import tempfile

        # Its own folder under the system temp dir: pytest's tmp folders are private to root, which the `postgres`
        # user cannot traverse.
        self.root = Path(tempfile.mkdtemp(prefix="valley-pg-"))
        self.port = port or free_port()
        self.data = self.root / "pgdata"
        self.log = self.root / "postgres.log"

    @property
    def storage_config(self) -> dict:
        """dagster-postgres's `postgres_db` block (it picks the driver; a bare postgresql:// URL would not)."""
        return {"postgres_db": {"username": "dagster", "password": "", "hostname": "127.0.0.1",
                                "db_name": "dagster", "port": self.port}}

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(self._as_owner(argv), capture_output=True, text=True)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}{log}")

    def __enter__(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "dagster", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                   "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                         "-c max_connections=200", "start"])
        self._run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "dagster", "dagster"])
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(self._as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                       "stop"]), capture_output=True, text=True)
        shutil.rmtree(self.root, ignore_errors=True)


def instance_yaml(pg_storage: dict, *, image: str, run_env: Mapping[str, str], volumes: Mapping[str, str],
                  max_concurrent_runs: int) -> dict:
    """dagster.yaml of the rehearsal: the chart's storage and coordinator, the Docker run launcher in place of
    K8sRunLauncher (no cluster runs Dagster's own run pods here)."""
    return {
        "storage": {"postgres": dict(pg_storage)},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": {"dequeue_interval_seconds": 1}},
        # Runs at once, and the accelerator pool (valley_assets.defs.common.GPU_POOL): one training or generation
        # step at a time, since the stand-in's one node holds one 2-pod training Job.
        "concurrency": {"runs": {"max_concurrent_runs": max_concurrent_runs},
                        "pools": {"default_limit": 1, "granularity": "op"}},
        "run_launcher": {
            "module": "dagster_docker", "class": "DockerRunLauncher",
            "config": {
                "image": image,
                "env_vars": [f"{k}={v}" for k, v in sorted(run_env.items())],
                "container_kwargs": {
                    "network_mode": "host",
                    "labels": {RUN_LABEL: "run"},
                    "volumes": {src: {"bind": dst, "mode": "ro"} for src, dst in volumes.items()},
                },
            },
        },
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 5, "start_timeout_seconds": 180},
        "telemetry": {"enabled": False},
    }


def helm_pod_env(values: dict, secrets: Mapping[str, Mapping[str, str]], *, profile: str) -> tuple[dict, dict]:
    """(code location env, run pod env) as the chart builds them from `values` (k8s/helm/dagster-values.yaml):
    `envSecrets` is envFrom (each key of the Secret becomes a variable of that name), `env` plain variables. The
    profile variable is the one difference (the rehearsal's profile instead of production)."""

    def from_secrets(entries: list[dict]) -> dict:
        env: dict[str, str] = {}
        for entry in entries or []:
            if entry["name"] not in secrets:
                raise KeyError(f"the Helm values name Secret {entry['name']!r}, which the rehearsal did not create")
            env.update(secrets[entry["name"]])
        return env

    deployment = values["dagster-user-deployments"]["deployments"][0]
    plain = {e["name"]: e["value"] for e in deployment.get("env") or []}
    plain["VALLEY_PROFILE"] = profile
    location = {**from_secrets(deployment.get("envSecrets")), **plain}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run = {**from_secrets(launcher.get("envSecrets")), **plain}  # includeConfigInLaunchedRuns: the location's env
    return location, run


class DagsterDeployment:
    """Code server container + webserver + daemon on one Dagster home (see the module docstring)."""

    def __init__(self, home: Path, *, image: str, pg_storage: dict, location_env: Mapping[str, str],
                 run_env: Mapping[str, str], volumes: Mapping[str, str], max_concurrent_runs: int = 2,
                 startup_timeout_s: float = 300):
        self.home = Path(home)
        self.image, self.pg_storage = image, pg_storage
        self.location_env, self.run_env, self.volumes = dict(location_env), dict(run_env), dict(volumes)
        self.max_concurrent_runs, self.startup_timeout_s = max_concurrent_runs, startup_timeout_s
        self.grpc_port, self.web_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.code_server = f"valley-rehearsal-code-{self.grpc_port}"
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> DagsterDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(
            self.pg_storage, image=self.image, run_env=self.run_env, volumes=self.volumes,
            max_concurrent_runs=self.max_concurrent_runs)))
        (self.home / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": self.grpc_port, "location_name": "valley"}}]}))
        try:
            self._start_code_server()
            env = {**os.environ, "DAGSTER_HOME": str(self.home)}
            self._spawn("webserver", [str(BIN / "dagster-webserver"), "-w", str(self.home / "workspace.yaml"),
                                      "-h", "127.0.0.1", "-p", str(self.web_port)], env)
            self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.home / "workspace.yaml")], env)
            self._wait_until_loaded()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_code_server(self) -> None:
        """The chart's user deployment: `dagster api grpc` in the trainer image, with the run pods' env."""
        argv = ["docker", "run", "-d", "--name", self.code_server, "--network", "host", "--label", f"{RUN_LABEL}=code"]
        for key, value in sorted({**self.location_env, "DAGSTER_CURRENT_IMAGE": self.image}.items()):
            argv += ["-e", f"{key}={value}"]
        for src, dst in self.volumes.items():
            argv += ["-v", f"{src}:{dst}:ro"]
        argv += [self.image, "dagster", "api", "grpc", "--module-name", "valley_assets.definitions",
                 "--host", "127.0.0.1", "--port", str(self.grpc_port)]
        subprocess.run(argv, check=True, capture_output=True, text=True)

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        log = self.home / f"{name}.log"
        self.logs[name] = log
        self.procs.append(subprocess.Popen(argv, env=dict(env), stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                           preexec_fn=reset_signals, cwd=self.home))

    def code_server_log(self, tail: int = 200) -> str:
        out = subprocess.run(["docker", "logs", "--tail", str(tail), self.code_server], capture_output=True, text=True)
        return out.stdout + out.stderr

    def log_tail(self, chars: int = 3000) -> str:
        parts = [f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}" for name, path in self.logs.items()
                 if path.exists()]
        parts.append(f"--- code server ---\n{self.code_server_log()[-chars:]}")
        return "\n".join(parts)

    def _wait_until_loaded(self) -> None:
        def check_alive():
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{self.log_tail()}")

        wait_for_code_location(self.graphql, check_alive=check_alive, log_tail=self.log_tail,
                               timeout_s=self.startup_timeout_s, retry_load_errors=True)

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # DockerRunLauncher never removes its containers; the code server is ours too.
        listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}"], capture_output=True,
                                text=True).stdout.split()
        if listed:
            subprocess.run(["docker", "rm", "-f", *listed], capture_output=True, text=True)

    # --- GraphQL ---------------------------------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping | None = None, timeout: float = 60.0) -> dict:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        answer = http_json(f"{self.base}/graphql", body, timeout=timeout)
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def run_container_logs(self, run_id: str, tail: int = 200) -> str:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=dagster/run_id={run_id}"],
                             capture_output=True, text=True).stdout.split()
        logs = []
        for cid in ids:
            out = subprocess.run(["docker", "logs", "--tail", str(tail), cid], capture_output=True, text=True)
            state = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}} exit={{.State.ExitCode}}", cid],
                                   capture_output=True, text=True).stdout.strip()
            logs.append(f"[container {cid[:12]}: {state}]\n{out.stdout}{out.stderr}")
        return "\n".join(logs)
