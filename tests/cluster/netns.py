"""Separate hosts on this one machine: Linux network namespaces joined by a bridge (root only).

A ``Network`` is one private /24 on ``10.231.N.0`` (``N`` picked per run among the ones no local
interface uses) with a bridge in its own "switch" namespace, so nothing here touches the machine's
own firewall or routes. Each ``Host`` is a network namespace with one interface (``eth0``,
``10.231.N.X``, no default route: its traffic stays on the bridge) and one process tree in its own
PID and mount namespaces, with a private tmpfs on ``/tmp`` (its HOME and working directory are
``/tmp/home``) and on ``/dev/shm``. Hosts share only the installed environment (this repository
and its virtualenv, bound back into the private ``/tmp`` where they live under it) and whatever
they reach over the bridge.

The runner (the test process, in the root namespace) gets ``10.231.N.1`` on a link to the bridge,
to talk to the object store and read results; the root namespace is no gateway (the hosts have no
default route). Killing a host kills its PID namespace's first process, so the kernel ends every
process of that host at once (``unshare --kill-child``). Names carry a random run id, so a crashed
run never blocks the next one; ``stale()`` lists what a crashed run left.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFIX = "rsc"  # every namespace / link this module makes starts with it
HOST_HOME = "/tmp/home"
KEEP = "/run/regionset-cluster-keep"  # the real /tmp, seen for a moment while a host starts
START_SECONDS = 20.0
# Environment that is the runner's own, never a host's: each host gets its own HOME and temp dir.
NOT_INHERITED = ("HOME", "TMPDIR", "PWD", "OLDPWD", "REGIONSET_CATALOG_DIR", "PYTHONPATH")
NOT_INHERITED_PREFIXES = ("RAY_", "AWS_", "SPARK_", "PYSPARK_")


def shared_under_tmp() -> list[str]:
    """The installed environment (this virtualenv, this repository) where it lives under ``/tmp``
    (as in ``.ci/run``, which makes its venv with ``mktemp -d``): bound back into every host's
    private ``/tmp``, as a cluster's hosts share one image."""
    keep: set[str] = set()
    for p in (sys.prefix, sys.base_prefix, str(REPO)):
        for q in (Path(p), Path(p).resolve()):
            if q.is_relative_to("/tmp") and q != Path("/tmp"):
                keep.add(str(q))
    return sorted(k for k in keep if not any(k != o and k.startswith(o + "/") for o in keep))


def _rebind_shared() -> str:
    """Shell commands (each ending in ``&& ``) that bind each ``shared_under_tmp`` folder back from ``KEEP``."""
    return "".join(f"mkdir -p '{p}' && mount --bind '{KEEP}/{Path(p).relative_to('/tmp')}' '{p}' && "
                   for p in shared_under_tmp())


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def why_not_available() -> str | None:
    """Why network namespaces cannot be made here (a skip reason), or None when they can."""
    if os.geteuid() != 0:
        return "the cluster tests need root (network namespaces: ip netns add)"
    for tool in ("ip", "unshare", "nsenter"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"the cluster tests need `{tool}` (iproute2 / util-linux)"
    name = f"{PREFIX}probe{secrets.token_hex(3)}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"ip netns add is not allowed here: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def _used_subnets() -> set[int]:
    out = _ip("-o", "-4", "addr").stdout
    return {int(w.split(".")[2]) for w in out.split() if w.startswith("10.231.")}


def host_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process on a host: the runner's, less what is the runner's own, with
    HOME and TMPDIR on the host's private tmpfs and this interpreter's ``bin`` first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in NOT_INHERITED and not k.startswith(NOT_INHERITED_PREFIXES)}
    env.update(HOME=HOST_HOME, TMPDIR="/tmp", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


class Host:
    """One host: a network namespace with an address, and its own PID + mount namespaces.

    Args:
        net: the network it is on.
        name: short name (``store``, ``head``, ``w1``...).
        index: last octet of its address.
    """

    def __init__(self, net: Network, name: str, index: int) -> None:
        self.net, self.name = net, name
        self.ns = f"{net.prefix}-{name}"
        self.ip = f"{net.base}.{index}"
        self._init: subprocess.Popen | None = None
        self.pid1 = 0  # the host's first process, as the runner sees it
        self.procs: list[subprocess.Popen] = []
        self._linked = False

    def _link(self) -> None:
        if self._linked:
            return
        port = f"{self.net.prefix}{self.name}"[:15]
        _ip("netns", "add", self.ns)
        _ip("-n", self.net.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        _ip("-n", self.net.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
        _ip("-n", self.ns, "link", "set", "eth0", "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        self._linked = True

    def start(self) -> None:
        """Make the namespace (once) and start the host's first process: a fresh, empty host (bounded wait)."""
        self._link()
        self.procs = []
        script = (f"mkdir -p {KEEP} && mount --bind /tmp {KEEP} && mount -t tmpfs -o size=4g tmpfs /tmp "
                  f"&& {_rebind_shared()}mount -t tmpfs tmpfs /dev/shm && umount -l {KEEP} && mkdir -p {HOST_HOME} "
                  "&& exec sleep 100000")
        self._init = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--pid", "--fork", "--kill-child", "--mount",
             "--propagation", "private", "--mount-proc", "sh", "-c", script],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            child = self._child()
            if child and Path(f"/proc/{child}/root{HOST_HOME}").is_dir():
                self.pid1 = child
                return
            if self._init.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"host {self.name} did not start: {self._init.stderr.read().decode()[-500:]}")

    def _child(self) -> int:
        try:
            # `ip netns exec` execs unshare (same pid); unshare forks the namespace's first process
            kids = Path(f"/proc/{self._init.pid}/task/{self._init.pid}/children").read_text().split()
        except OSError:
            return 0
        return int(kids[0]) if kids else 0

    def path(self, inside: str) -> Path:
        """A path on this host's private file systems, as the runner can read it."""
        return Path(f"/proc/{self.pid1}/root{inside}")

    def popen(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``cmd`` on this host (cwd and HOME ``/tmp/home``), its output appended to ``log``."""
        with open(log, "ab") as sink:
            proc = subprocess.Popen(
                ["nsenter", "-t", str(self.pid1), "-n", "-m", "-p", "--", "sh", "-c",
                 f'cd {HOST_HOME} && exec "$@"', self.name, *cmd],
                env=host_env(env), start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def run(self, cmd: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 300) -> int:
        """Run ``cmd`` on this host to its end (killed after ``timeout`` s); its exit code."""
        proc = self.popen(cmd, log, env)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise

    def kill(self) -> None:
        """Every process of this host ends at once (the host dies; its namespace stays)."""
        if self._init and self._init.poll() is None:
            os.killpg(self._init.pid, signal.SIGKILL)  # unshare --kill-child takes the PID namespace down
            self._init.wait(timeout=10)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    def restart(self) -> None:
        """Kill every process of this host and boot it again, empty (same address)."""
        self.kill()
        _ip("-n", self.ns, "link", "set", "eth0", "up")
        self.start()

    def cut(self) -> None:
        """Take this host's network link down (its processes keep running)."""
        _ip("-n", self.ns, "link", "set", "eth0", "down")


class Network:
    """A private subnet with a bridge, a runner link, and hosts (see the module docstring)."""

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(2)
        self.prefix = f"{PREFIX}{self.run_id}"
        free = sorted(set(range(2, 250)) - _used_subnets())
        self.base = f"10.231.{free[secrets.randbelow(len(free))]}"
        self.switch = f"{self.prefix}-sw"
        self.runner_ip = f"{self.base}.1"
        self.hosts: dict[str, Host] = {}

    def up(self) -> None:
        """The switch namespace with its bridge, and the runner's link to it."""
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        runner = f"{self.prefix}r"
        _ip("link", "add", runner, "type", "veth", "peer", "name", "up0", "netns", self.switch)
        _ip("-n", self.switch, "link", "set", "up0", "master", "br0", "up")
        _ip("addr", "add", f"{self.runner_ip}/24", "dev", runner)
        _ip("link", "set", runner, "up")

    def add(self, name: str) -> Host:
        """Start a host on this network (addresses from ``.2`` in the order added)."""
        host = self.hosts[name] = Host(self, name, len(self.hosts) + 2)
        host.start()
        return host

    def down(self) -> None:
        """Kill every host and delete every namespace and link this network made (errors ignored)."""
        for host in self.hosts.values():
            try:
                host.kill()
            except Exception as e:  # noqa: BLE001 (tear down the rest whatever one host does)
                print(f"cluster: stopping {host.name}: {e}", file=sys.stderr)
        for host in self.hosts.values():
            _ip("netns", "del", host.ns, check=False)
        _ip("link", "del", f"{self.prefix}r", check=False)
        _ip("netns", "del", self.switch, check=False)


def stale() -> list[str]:
    """Namespaces a crashed run of this module left: those of runs none of whose namespaces holds
    a process any more (a live run's hosts always do); ``bench/cluster.py down`` deletes them."""
    out = _ip("netns", "list", check=False).stdout
    runs: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith(PREFIX):
            name = line.split()[0]
            runs.setdefault(name.split("-")[0], []).append(name)
    return [ns for names in runs.values()
            if not any(_ip("netns", "pids", ns, check=False).stdout.strip() for ns in names) for ns in names]


def wait_port(ip: str, port: int, seconds: float, what: str) -> None:
    """Wait until ``ip:port`` accepts connections from the runner (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex((ip, port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{what}: nothing listens on {ip}:{port} after {seconds:g} s")
