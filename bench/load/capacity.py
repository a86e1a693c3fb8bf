"""CPU per message for each kind of process during a load run, and the capacity model built from it.

The sampler reads ``/proc`` every ``interval`` seconds: for each Mend process group (gateway, Rasa
server, action server: each is started in a session of its own, so a group is one service with any
children) and for the shared engines (PostgreSQL, Redis, RabbitMQ: by process name), it adds up the
CPU time used since the previous sample. A process killed during the run keeps what it used until
its last sample. Its replacement's start-up (a restarted Rasa server loads its model: a minute of
CPU) is counted apart, as "<kind> start-up", until it answers: that is the price of a fault, not of a
message, and the model leaves it out (the table shows it).

The model: measured CPU-seconds per acknowledged customer message for each kind, and the measured
messages per second per concurrent customer (the think time of the run), give the cores each kind
needs for N concurrent customers at a target utilisation (headroom for bursts and failover).
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Shared engines, by the process name /proc/<pid>/stat gives (RabbitMQ runs in the Erlang VM).
ENGINE_NAMES = {"postgres": "postgresql", "redis-server": "redis", "beam.smp": "rabbitmq", "epmd": "rabbitmq",
                "erl_child_setup": "rabbitmq", "inet_gethost": "rabbitmq"}
MODEL_KINDS = ("gateway", "rasa", "actions", "postgresql", "redis", "rabbitmq")


def _read_stat(pid: str) -> Optional[Tuple[str, int, float]]:
    """(process name, process group, CPU seconds) of one process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is state (stat field 3): pgrp is field 5, utime 14, stime 15
    return name, int(fields[2]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def processes() -> Iterable[Tuple[int, str, int, float]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(entry)
            if stat is not None:
                yield (int(entry), *stat)


@dataclass
class CpuSampler:
    """Accumulates CPU seconds per kind while running. ``groups`` names the current process group of
    each Mend service (kind -> pgids), asked at every sample so restarted services are followed."""

    groups: Callable[[], Dict[str, List[int]]]
    starting: Callable[[], Set[int]] = set  # process groups that do not answer yet (a restart loading)
    interval: float = 2.0
    used: Dict[str, float] = field(default_factory=dict)
    _last: Dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None
    started: float = 0.0
    ended: float = 0.0

    def sample(self) -> None:
        try:
            kind_of_group = {pgid: kind for kind, pgids in self.groups().items() for pgid in pgids}
            for pgid in self.starting():
                if pgid in kind_of_group:
                    kind_of_group[pgid] += " start-up"
        except Exception:  # a service being restarted has no pid this instant: try again next time
            return
        seen: Dict[int, float] = {}
        for pid, name, pgid, cpu in processes():
            kind = kind_of_group.get(pgid) or ENGINE_NAMES.get(name)
            if kind is None:
                continue
            seen[pid] = cpu
            before = self._last.get(pid)
            if before is not None and cpu >= before:
                self.used[kind] = self.used.get(kind, 0.0) + cpu - before
        # A process first seen now counts from now (its earlier CPU was before the measurement).
        self._last = seen

    def start(self) -> "CpuSampler":
        self.started = time.monotonic()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> Dict[str, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval * 3)
        self.sample()
        self.ended = time.monotonic()
        return dict(self.used)


@dataclass(frozen=True)
class CapacityModel:
    """Cores for ``customers`` concurrent customers, from one run's measured figures."""

    cpu_seconds: Dict[str, float]      # CPU seconds per kind during the load
    messages: int                      # customer messages acknowledged during the load
    duration_s: float                  # load duration
    concurrent_customers: int          # simulated customers during the load
    utilisation: float = 0.6           # target busy share of a core (bursts, a replica down)

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.duration_s if self.duration_s else 0.0

    @property
    def rate_per_customer(self) -> float:
        """Messages per second one concurrent customer sends (think time and reply time included)."""
        return self.messages_per_s / self.concurrent_customers if self.concurrent_customers else 0.0

    def cpu_per_message(self, kind: str) -> float:
        return self.cpu_seconds.get(kind, 0.0) / self.messages if self.messages else 0.0

    def messages_per_core_second(self, kind: str) -> Optional[float]:
        per = self.cpu_per_message(kind)
        return 1.0 / per if per > 0 else None

    def cores(self, kind: str, customers: int) -> float:
        return customers * self.rate_per_customer * self.cpu_per_message(kind) / self.utilisation

    def table(self, customers: int = 50_000) -> List[str]:
        lines = [f"Capacity model from this run: {self.messages} customer messages in {self.duration_s:.0f} s "
                 f"({self.messages_per_s:.2f} msg/s) from {self.concurrent_customers} concurrent customers "
                 f"= {self.rate_per_customer * 60:.3f} messages per customer per minute",
                 f"  {'process kind':<12} {'CPU s used':>10} {'CPU ms/msg':>11} {'msg/s per core':>15} "
                 f"{'cores for ' + format(customers, ','):>18}"]
        total = 0.0
        for kind in MODEL_KINDS:
            if kind not in self.cpu_seconds:
                continue
            cores = self.cores(kind, customers)
            total += cores
            per_core = self.messages_per_core_second(kind)
            lines.append(f"  {kind:<12} {self.cpu_seconds[kind]:>10.1f} {self.cpu_per_message(kind) * 1000:>11.1f} "
                         f"{(f'{per_core:.1f}' if per_core else '-'):>15} {cores:>18.1f}")
        for kind in sorted(k for k in self.cpu_seconds if k.endswith(" start-up")):
            lines.append(f"  {kind:<20} {self.cpu_seconds[kind]:>10.1f} CPU s after a kill, until it answered "
                         f"(not per message: left out)")
        lines.append(f"  {'total':<12} {sum(self.cpu_seconds.get(k, 0.0) for k in MODEL_KINDS):>10.1f} "
                     f"{sum(self.cpu_per_message(k) for k in MODEL_KINDS) * 1000:>11.1f} {'':>15} "
                     f"{total:>18.1f}  -> {math.ceil(total)} cores at {self.utilisation:.0%} busy")
        return lines

    def as_dict(self, customers: int = 50_000) -> Dict[str, object]:
        return {"messages": self.messages, "duration_s": self.duration_s,
                "concurrent_customers": self.concurrent_customers, "utilisation": self.utilisation,
                "messages_per_customer_per_minute": self.rate_per_customer * 60,
                "cpu_seconds": self.cpu_seconds,
                "cpu_ms_per_message": {k: self.cpu_per_message(k) * 1000 for k in self.cpu_seconds},
                f"cores_for_{customers}": {k: self.cores(k, customers) for k in MODEL_KINDS if k in self.cpu_seconds},
                f"total_cores_for_{customers}": sum(self.cores(k, customers) for k in MODEL_KINDS
                                                   if k in self.cpu_seconds)}
