"""web/config.py's sizing of gunicorn to the cores a container may use."""

import os

from web import config


def test_a_container_cpu_limit_caps_the_cores(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs: two cores' worth of time, rounded up
    assert config.available_cores(str(cpu_max)) == min(2, len(os.sched_getaffinity(0)))
    cpu_max.write_text("50000 100000\n")  # half a CPU still gets one core
    assert config.available_cores(str(cpu_max)) == 1


def test_no_limit_means_every_core_we_may_run_on(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert config.available_cores(str(cpu_max)) == len(os.sched_getaffinity(0))
    assert config.available_cores(str(tmp_path / "absent")) == len(os.sched_getaffinity(0))


def test_web_concurrency_is_set_or_two_per_core_plus_one():
    assert config.server({"WEB_CONCURRENCY": "3"})["WEB_CONCURRENCY"] == 3
    assert config.server({})["WEB_CONCURRENCY"] == 2 * config.available_cores() + 1
