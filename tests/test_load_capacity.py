"""The load test's CPU sampler and capacity model (bench/load/capacity.py) and its kill targets.

The capacity figures in the closing notes come from these; a sampler that missed a busy process or a
model that divided the wrong way would print plausible wrong numbers, so both are checked against a
process whose CPU use is known.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from bench.load.capacity import CapacityModel, CpuSampler
from bench.load.run import parse_kill
from bench.load.stacks import parse_target

BUSY = ("import sys, time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
        "print('burnt', flush=True)\ntime.sleep(60)\n")


def _busy(seconds: float) -> subprocess.Popen:
    """A process (its own session, like every Mend service) that burns ``seconds`` of CPU, then idles."""
    return subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=seconds)], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)


def _burnt(process: subprocess.Popen) -> None:
    """Wait until it has used its CPU (however busy the machine is), plus one sampling interval."""
    assert process.stdout is not None and process.stdout.readline().strip() == "burnt"
    time.sleep(0.5)


def test_the_sampler_counts_a_busy_service_and_follows_its_replacement() -> None:
    first, second = _busy(1.0), None
    current = {"rasa": [first.pid]}
    sampler = CpuSampler(lambda: dict(current), interval=0.2).start()
    try:
        _burnt(first)
        first.kill()
        first.wait()
        second = _busy(0.8)  # the supervisor's replacement: a new process group
        current["rasa"] = [second.pid]
        _burnt(second)
        used = sampler.stop()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    # About 1.0 + 0.8 CPU seconds; a little is lost between a process's start and its first sample.
    assert 1.2 <= used["rasa"] <= 2.2, used
    assert "gateway" not in used


def test_an_idle_service_costs_nothing() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        time.sleep(0.5)  # past the interpreter's start-up
        sampler = CpuSampler(lambda: {"actions": [idle.pid]}, interval=0.2).start()
        time.sleep(1.0)
        used = sampler.stop()
    finally:
        idle.kill()
        idle.wait()
    assert used.get("actions", 0.0) < 0.1


def test_the_model_scales_measured_cpu_per_message_to_the_customers_asked_for() -> None:
    # 600 messages in 300 s from 1,000 customers: 0.002 msg/s each; Rasa used 120 CPU s = 200 ms per message.
    model = CapacityModel(cpu_seconds={"rasa": 120.0, "gateway": 30.0}, messages=600, duration_s=300.0,
                          concurrent_customers=1000, utilisation=0.5)
    assert model.rate_per_customer == pytest.approx(0.002)
    assert model.messages_per_core_second("rasa") == pytest.approx(5.0)
    # 50,000 customers -> 100 msg/s -> 20 busy cores of Rasa -> 40 cores at 50 % utilisation.
    assert model.cores("rasa", 50_000) == pytest.approx(40.0)
    assert model.cores("gateway", 50_000) == pytest.approx(10.0)
    assert model.as_dict()["total_cores_for_50000"] == pytest.approx(50.0)
    assert any("50 cores" in line for line in model.table())


def test_a_run_without_messages_gives_no_figures_rather_than_dividing_by_zero() -> None:
    model = CapacityModel(cpu_seconds={"rasa": 5.0}, messages=0, duration_s=60.0, concurrent_customers=10)
    assert model.messages_per_core_second("rasa") is None
    assert model.cores("rasa", 50_000) == 0.0


def test_kill_targets_name_a_process_and_a_replica() -> None:
    assert parse_kill("rasa:60") == ("rasa", 60.0)
    assert parse_kill("gateway@2:1m30s") == ("gateway@2", 90.0)
    assert parse_target("gateway@2") == ("gateway", 1)
    for bad in ("postgres:10", "rasa@0:10", "rasa@x:10", "rasa:soon", "rasa"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_kill(bad)


def test_a_restarted_service_loading_is_counted_apart_from_its_messages() -> None:
    loading = _busy(0.6)
    starting = {loading.pid}
    sampler = CpuSampler(lambda: {"rasa": [loading.pid]}, lambda: set(starting), interval=0.2).start()
    try:
        _burnt(loading)
        starting.clear()  # it answers now: what it uses from here on is per message again
        used = sampler.stop()
    finally:
        loading.kill()
        loading.wait()
    assert used.get("rasa start-up", 0.0) >= 0.3, used
    assert used.get("rasa", 0.0) < 0.1, used
    model = CapacityModel(cpu_seconds=used, messages=10, duration_s=10.0, concurrent_customers=5)
    assert model.cores("rasa", 50_000) < 1.0
    assert any("rasa start-up" in line and "left out" in line for line in model.table())
