"""A real single-node SLURM cluster on this machine, for integration tests and for trying the
README's SLURM section by hand.

As a script (run as root)::

    eval "$(python tests/slurm_cluster.py start /tmp/slurm)"   # prints the export lines
    sbatch --wrap 'hostname'; squeue; sacct -j 1
    python tests/slurm_cluster.py status /tmp/slurm
    python tests/slurm_cluster.py stop /tmp/slurm

As a library::

    with start_cluster(folder) as cluster:            # or cluster = start_cluster(folder)
        subprocess.run(["sbatch", ...], env={**os.environ, **cluster.env})
    # cluster.stop() on leaving the block

As a pytest fixture: ``from tests.slurm_cluster import slurm_cluster`` in a test module, then
take ``slurm_cluster`` (session-scoped, a :class:`Cluster`) as an argument. It skips with the
reason when the packages are absent or the tests do not run as root; for the whole session it
puts ``cluster.env`` into ``os.environ`` (submitit, and ``harness`` subprocesses, find the
cluster through ``SLURM_CONF`` there), and stops the cluster afterwards.

What runs (Debian packages ``slurm-wlm`` and ``munge``; ``.ci/run`` installs them):

* ``munged`` with its own key (generated into ``<folder>/munge/munge.key``), socket, pid, log
  and seed files under the folder, so a system munged (``/run/munge``) is neither used nor
  disturbed. slurm.conf's ``AuthInfo=socket=...`` points slurmctld, slurmd and every client
  command (sbatch, squeue, sacct, scancel, scontrol, sinfo) at that socket.
* ``slurmctld`` and ``slurmd``, as root (``SlurmUser=root``), on free TCP ports, with state,
  spool, logs, pid files and ``slurm.conf`` under the folder. One node named after this
  machine (short hostname, as slurmd sees it) with ``os.cpu_count()`` CPUs and a RealMemory
  5% under MemTotal; one default partition ``debug``. ``select/cons_tres`` with
  ``CR_CPU_Memory``: a job asking for more memory or CPUs than the node has, or for a GPU
  (no GRES is configured), is refused by sbatch, as a real cluster refuses it. A job that
  asks for no memory gets ``DefMemPerCPU`` = RealMemory / CPUs, so each CPU can take a job.
  ``proctrack/linuxproc`` and ``task/none`` (no cgroups needed); requeue allowed.

Accounting: there is no slurmdbd (it needs a MySQL/MariaDB server), so the real ``sacct``
fails with "Slurm accounting storage is disabled" (exit 1); ``accounting_storage/filetxt`` no
longer exists in Slurm 22.05. The cluster writes a job-completion log instead
(``JobCompType=jobcomp/filetxt``, ``<folder>/log/jobcomp.txt``), which the real
``sacct --completion`` reads, and ``cluster.env`` puts ``<folder>/bin`` first on ``PATH``,
where a two-line ``sacct`` runs the real one with ``--completion``. So ``sacct -j ID``
(and submitit, which polls ``sacct -o JobID,State,NodeList --parsable2 -j ID``) sees a job's
state once the job has ended (COMPLETED, FAILED, CANCELLED, TIMEOUT, ...) or been requeued
(a PENDING record); a job that is still pending or running is not listed yet (use
``squeue``) -- submitit then reports ``UNKNOWN`` and keeps waiting, as it does while a real
sacct lags. Without the shim (``start_cluster(..., sacct_shim=False)``) submitit logs
"Bypassing sacct error ..." on every poll, still returns results (it looks for the result
file first), but waits forever on a job that died without writing one (e.g. ``scancel``).

Stopping cancels the jobs still queued or running (``scancel``), then ``scontrol shutdown``
(slurmctld and slurmd), then stops munged; it deletes nothing: logs, state, job outputs stay.
Starting again in the same folder reuses the munge key and recovers slurmctld's state (job
ids go on from where they were). Here (2 CPUs) a start takes about 0.1 s until the node is
idle, a stop 0.1-0.2 s (a few seconds more when running jobs ignore SIGTERM: KillWait=5).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PACKAGES = "Debian packages slurm-wlm and munge (apt-get install slurm-wlm munge; .ci/run installs them)"
DAEMONS = {"slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "munged": "munge"}
CLIENTS = {name: "slurm-wlm" for name in ("sbatch", "squeue", "sacct", "scancel", "scontrol", "sinfo")}
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")  # daemons live here, often off a user's PATH
PARTITION = "debug"
KILL_WAIT_S = 5  # SIGTERM to SIGKILL on scancel/timeout (Slurm's default 30 s slows tests down)
CRED_EXPIRE_S = 5  # also how long a requeued job waits to restart (default 120; below 5: "invalid", 120)


class ClusterError(RuntimeError):
    """A cluster that cannot start or stop; the message is one line (plus log tails)."""


def find_binaries() -> tuple[dict[str, str], list[str]]:
    """({name: path} of the daemons and client commands found, [missing names with package])."""
    found, missing = {}, []
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
    for name, package in {**DAEMONS, **CLIENTS}.items():
        path = shutil.which(name, path=search)
        if path:
            found[name] = path
        else:
            missing.append(f"{name} ({package})")
    return found, missing


def _alive(pid: int, name: str) -> bool:
    """Whether process ``pid`` is running (not a zombie) and is ``name`` (not a reused pid)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and comm.startswith(name[:15])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterError("cannot read MemTotal from /proc/meminfo")


def _world_traversable(path: Path) -> bool:
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return f"  ({path}: no such file)"
    return "\n".join(f"  {line}" for line in lines) or f"  ({path}: empty)"


class Cluster:
    """A single-node cluster whose files all live under ``folder``."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).resolve()
        self.conf = self.folder / "slurm.conf"
        self.munge_dir = self.folder / "munge"
        self.munge_key = self.munge_dir / "munge.key"
        self.munge_socket = self.munge_dir / "munge.socket"
        self.bin_dir = self.folder / "bin"
        self.log_dir = self.folder / "log"
        self.state_dir = self.folder / "state"
        self.spool_dir = self.folder / "spool"
        self.run_dir = self.folder / "run"
        self.pid_files = {
            "munged": self.munge_dir / "munged.pid",
            "slurmctld": self.run_dir / "slurmctld.pid",
            "slurmd": self.run_dir / "slurmd.pid",
        }
        self.info_file = self.folder / "cluster.json"
        info = self._read_info()
        self.node: str = info.get("node", socket.gethostname().split(".")[0])
        self.partition: str = info.get("partition", PARTITION)
        self.cpus: int = info.get("cpus", os.cpu_count() or 1)
        self.memory_mb: int = info.get("memory_mb", 0)
        self.sacct_shim: bool = info.get("sacct_shim", True)
        self.start_s: float | None = None
        self.stop_s: float | None = None

    def _read_info(self) -> dict:
        """What the last start in this folder recorded (node, CPUs, memory, ports), or {}."""
        try:
            return json.loads(self.info_file.read_text())
        except (OSError, ValueError):
            return {}

    # -- what callers use ------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """Variables to add to a subprocess's (or os.environ's) environment to use the cluster."""
        env = {"SLURM_CONF": str(self.conf)}
        if self.sacct_shim:
            path = os.environ.get("PATH", os.defpath)
            if path.split(os.pathsep)[0] != str(self.bin_dir):
                path = os.pathsep.join([str(self.bin_dir), path])
            env["PATH"] = path
        return env

    def shell_exports(self) -> str:
        """The lines a user evals to use the cluster from a shell."""
        lines = [f"export SLURM_CONF={shlex.quote(str(self.conf))}"]
        if self.sacct_shim:
            lines.append(f'export PATH={shlex.quote(str(self.bin_dir))}:"$PATH"')
        return "\n".join(lines)

    def running(self) -> dict[str, int]:
        """{daemon: pid} of this cluster's daemons that are alive."""
        alive = {}
        for name, pid_file in self.pid_files.items():
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if _alive(pid, name):
                alive[name] = pid
        return alive

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a client command (sbatch, squeue, ...) against this cluster."""
        proc = subprocess.run(
            list(argv), env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise ClusterError(
                f"{shlex.join(argv)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def node_state(self) -> str:
        """The node's state as sinfo prints it (``idle``, ``mixed``, ``down*``, ...), or ''."""
        proc = self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False, timeout=15)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"Cluster({str(self.folder)!r}, node={self.node!r}, cpus={self.cpus}, "
            f"memory_mb={self.memory_mb}, running={sorted(self.running())})"
        )

    # -- start -------------------------------------------------------------------------------
    def start(self, timeout: float = 60, sacct_shim: bool = True) -> Cluster:
        bins, missing = find_binaries()
        if missing:
            raise ClusterError(f"not installed: {', '.join(missing)}; {PACKAGES}")
        if os.geteuid() != 0:
            raise ClusterError("the single-node SLURM cluster runs slurmctld and slurmd as root; run this as root")
        alive = self.running()
        if alive:
            names = ", ".join(f"{n} pid {p}" for n, p in alive.items())
            raise ClusterError(
                f"a slurm cluster is already running in {self.folder} ({names}); "
                f"stop it first: python {__file__} stop {self.folder}"
            )
        if len(str(self.munge_socket)) > 100:  # a unix socket path must fit in 108 bytes
            raise ClusterError(f"folder path too long for munge's socket ({self.munge_socket}); use a shorter folder")
        t0 = time.monotonic()
        self.sacct_shim = sacct_shim
        self._write_files(bins)
        try:
            self._start_munged(bins)
            self._start_daemon(bins, "slurmctld")
            slurmd_launched = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
            self._start_daemon(bins, "slurmd")
            self._wait_idle(timeout, slurmd_launched)
        except BaseException:
            self.stop()
            raise
        self.start_s = time.monotonic() - t0
        return self

    def _write_files(self, bins: dict[str, str]) -> None:
        for d in (self.folder, self.munge_dir, self.bin_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)  # munged wants its socket folder reachable by all (clients run as anyone)
        for d in (self.log_dir, self.state_dir, self.spool_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.munge_key.exists():  # a restart keeps the key
            fd = os.open(self.munge_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(128))  # 1024 bits, as `mungekey --create`
        mem_total = _mem_total_mb()
        self.memory_mb = int(mem_total * 0.95)  # over MemTotal, slurmd would drain the node
        self.cpus = os.cpu_count() or 1
        self.node = socket.gethostname().split(".")[0]  # slurmd's own NodeName: short hostname
        ctld_port, slurmd_port = _free_ports(2)
        plugstack = self.folder / "plugstack.conf"
        plugstack.write_text("# no SPANK plugins (the system's /etc/slurm/plugstack.conf is ignored)\n")
        f = self.folder
        self.conf.write_text(f"""\
# Single-node test cluster written by tests/slurm_cluster.py; regenerated on each start.
ClusterName=svgbench
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# our own munged; cred_expire also sets how long a requeued job waits before it may restart
AuthInfo=socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}
StateSaveLocation={f}/state
SlurmdSpoolDir={f}/spool
SlurmctldPidFile={f}/run/slurmctld.pid
SlurmdPidFile={f}/run/slurmd.pid
SlurmctldLogFile={f}/log/slurmctld.log
SlurmdLogFile={f}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={plugstack}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
# look at pending jobs every second (defaults 60 s / 30 s): a requeued job restarts promptly
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# refuse at submission what the partition can never run, instead of leaving it pending
EnforcePartLimits=ALL
JobRequeue=1
ReturnToService=2
KillWait={KILL_WAIT_S}
# no slurmdbd: sacct --completion reads this job-completion log (see bin/sacct)
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={f}/log/jobcomp.txt
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP \
DefMemPerCPU={self.memory_mb // self.cpus}
""")
        shim = self.bin_dir / "sacct"
        if self.sacct_shim:
            shim.write_text(
                "#!/bin/sh\n# no slurmdbd here: read the job-completion log "
                "(JobCompType=jobcomp/filetxt)\n"
                f'exec {shlex.quote(bins["sacct"])} --completion "$@"\n'
            )
            shim.chmod(0o755)
        elif shim.exists():
            shim.unlink()
        self.info_file.write_text(
            json.dumps(
                {
                    "node": self.node,
                    "partition": PARTITION,
                    "cpus": self.cpus,
                    "memory_mb": self.memory_mb,
                    "sacct_shim": self.sacct_shim,
                    "slurmctld_port": ctld_port,
                    "slurmd_port": slurmd_port,
                },
                indent=1,
            )
            + "\n"
        )

    def _daemon_env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _spawn(self, argv: list[str], name: str) -> None:
        """Runs a daemon that forks into the background; its early errors go to log/<name>.out."""
        out = self.log_dir / f"{name}.out"
        with open(out, "wb") as f:
            proc = subprocess.run(
                argv,
                env=self._daemon_env(),
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.folder,
                timeout=60,
            )
        if proc.returncode != 0:
            raise ClusterError(f"{name} failed to start (exit {proc.returncode}):\n{_tail(out)}")

    def _wait_pid(self, name: str, log: Path, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while name not in self.running():
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{name} did not come up within {timeout:.0f} s; "
                    f"its log {log}:\n{_tail(log)}\n{_tail(self.log_dir / (name + '.out'))}"
                )
            time.sleep(0.05)

    def _start_munged(self, bins: dict[str, str]) -> None:
        d = self.munge_dir
        argv = [
            bins["munged"],
            f"--key-file={self.munge_key}",
            f"--socket={self.munge_socket}",
            f"--pid-file={d / 'munged.pid'}",
            f"--log-file={d / 'munged.log'}",
            f"--seed-file={d / 'munged.seed'}",
        ]
        if not _world_traversable(d):
            # munged wants every folder above its socket to be o+x so any user can reach it;
            # here only root talks to it, so --force turns that error into a warning
            argv.append("--force")
        self._spawn(argv, "munged")
        self._wait_pid("munged", d / "munged.log")
        deadline = time.monotonic() + 10
        while not self.munge_socket.exists():
            if time.monotonic() > deadline:
                raise ClusterError(f"munged made no socket {self.munge_socket}:\n{_tail(d / 'munged.log')}")
            time.sleep(0.05)

    def _start_daemon(self, bins: dict[str, str], name: str) -> None:
        self._spawn([bins[name]], name)
        self._wait_pid(name, self.log_dir / f"{name}.log")

    def _slurmd_registered(self, since: str) -> bool:
        """Whether this start's slurmd has registered (a restart recovers the old node state)."""
        out = self.run("scontrol", "show", "node", self.node, check=False, timeout=15).stdout
        started = next((w.split("=", 1)[1] for w in out.split() if w.startswith("SlurmdStartTime=")), "")
        return started >= since  # both local time, ISO 8601: string order is time order

    def _wait_idle(self, timeout: float, slurmd_launched: str) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            state = self.node_state()
            if state == "idle" and self._slurmd_registered(slurmd_launched):
                return
            for name in ("slurmctld", "slurmd"):
                if name not in self.running():
                    raise ClusterError(
                        f"{name} exited during start-up; its log:\n{_tail(self.log_dir / (name + '.log'))}"
                    )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node {self.node} not idle within {timeout:.0f} s (sinfo: {state or 'no answer'})"
                    f"\nslurmctld.log:\n{_tail(self.log_dir / 'slurmctld.log')}"
                    f"\nslurmd.log:\n{_tail(self.log_dir / 'slurmd.log')}"
                )
            time.sleep(0.1)

    # -- stop --------------------------------------------------------------------------------
    def stop(self, timeout: float = 30) -> str:
        """Stops the daemons (jobs first); deletes nothing. Returns one line saying what it did."""
        alive = self.running()
        if not alive:
            return f"no slurm cluster running in {self.folder}; nothing to stop"
        t0 = time.monotonic()
        term_after = 0.0  # without slurmctld, no `scontrol shutdown`: SIGTERM slurmd at once
        if "slurmctld" in alive:
            self._cancel_jobs(timeout=KILL_WAIT_S + 10)
            if self.run("scontrol", "shutdown", check=False, timeout=30).returncode == 0:
                term_after = timeout / 2
        self._wait_gone(("slurmctld", "slurmd"), timeout, term_after=term_after)
        self._wait_gone(("munged",), timeout)
        self.stop_s = time.monotonic() - t0
        return f"slurm cluster in {self.folder} stopped ({self.stop_s:.1f} s)"

    def _cancel_jobs(self, timeout: float) -> None:
        """scancel every job, then wait (up to ``timeout``) until none is left running."""
        ids = self.run("squeue", "-h", "-o", "%A", check=False, timeout=15).stdout.split()
        if not ids:
            return
        self.run("scancel", *ids, check=False, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.run("squeue", "-h", "-o", "%T", check=False, timeout=15).stdout.split()
            if not any(s in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED") for s in states):
                return
            time.sleep(0.2)

    def _wait_gone(self, names: tuple[str, ...], timeout: float, term_after: float = 0) -> None:
        """Waits for ``names`` to exit: SIGTERM after ``term_after`` s, SIGKILL after ``timeout``."""
        t0 = time.monotonic()
        termed = False
        while True:
            alive = {n: p for n, p in self.running().items() if n in names}
            if not alive:
                return
            waited = time.monotonic() - t0
            if waited > timeout:
                for pid in alive.values():
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
                return
            if waited >= term_after and not termed:
                for pid in alive.values():
                    os.kill(pid, signal.SIGTERM)
                termed = True
            time.sleep(0.05)


def start_cluster(folder: str | os.PathLike, timeout: float = 60, sacct_shim: bool = True) -> Cluster:
    """Starts a single-node cluster in ``folder`` (made if absent) and waits until its node is
    idle. Raises :class:`ClusterError` (not installed, not root, already running, start-up
    failure with the daemons' log tails)."""
    return Cluster(folder).start(timeout=timeout, sacct_shim=sacct_shim)


def stop_cluster(folder: str | os.PathLike) -> str:
    return Cluster(folder).stop()


def skip_reason() -> str | None:
    """Why the cluster cannot run here (for pytest.skip), or None."""
    _, missing = find_binaries()
    if missing:
        return f"SLURM test cluster: not installed: {', '.join(missing)}; {PACKAGES}"
    if os.geteuid() != 0:
        return "SLURM test cluster: slurmctld and slurmd run as root; the tests are not root"
    return None


try:
    import pytest
except ImportError:  # the script does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def slurm_cluster() -> Iterator[Cluster]:
        """A running single-node :class:`Cluster`, its ``env`` set in ``os.environ``."""
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        # Not under pytest's basetemp: /tmp/pytest-of-root is 0700 (munged wants a socket any
        # user can reach) and its paths can get long for a unix socket.
        base = Path(tempfile.gettempdir())
        if len(str(base)) > 40 or not _world_traversable(base):
            base = Path("/tmp")
        folder = Path(tempfile.mkdtemp(prefix="svgbench-slurm-", dir=base))
        cluster = start_cluster(folder)
        mp = pytest.MonkeyPatch()
        for key, value in cluster.env.items():
            mp.setenv(key, value)
        try:
            yield cluster
        finally:
            mp.undo()
            cluster.stop()
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/slurm_cluster.py",
        description="Start/stop a single-node SLURM cluster (slurm-wlm, munge) under FOLDER. "
        "Start prints the export lines to eval: "
        'eval "$(python tests/slurm_cluster.py start /tmp/slurm)".',
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the node to be idle (start)")
    parser.add_argument(
        "--no-sacct-shim", action="store_true", help="leave the real sacct on PATH (it fails: no accounting database)"
    )
    args = parser.parse_args(argv)
    cluster = Cluster(args.folder)
    try:
        if args.action == "start":
            cluster.start(timeout=args.timeout, sacct_shim=not args.no_sacct_shim)
            print(
                f"slurm cluster up in {cluster.folder}: node {cluster.node}, {cluster.cpus} CPUs, "
                f"{cluster.memory_mb} MB, partition {cluster.partition} "
                f"({cluster.start_s:.1f} s); stop: python {sys.argv[0]} stop {cluster.folder}",
                file=sys.stderr,
            )
            print(cluster.shell_exports())
        elif args.action == "stop":
            print(cluster.stop(), file=sys.stderr)
        else:
            alive = cluster.running()
            if not alive:
                print(f"no slurm cluster running in {cluster.folder}")
                return 1
            print(
                f"slurm cluster in {cluster.folder}: "
                + ", ".join(f"{n} pid {p}" for n, p in alive.items())
                + f"; node {cluster.node} {cluster.node_state() or '(no answer)'}"
            )
            print(cluster.shell_exports())
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
