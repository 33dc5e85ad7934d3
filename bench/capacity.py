"""The capacity model (docs/capacity.md): what one submission costs each
component, and the submission rate at which each one runs out of CPU.

Every figure comes from the round's medians (bench/rounds.py):
- the enqueue: the web's and Redis's CPU and Redis's commands over the posts
  that fill the backlog (the web alone, no workers, no PostgreSQL);
- the storage: the workers', PostgreSQL's and Redis's CPU and Redis's commands
  over the drain with the recommended worker count (start-up excluded);
- Redis bytes: queued (after the fill) and finished (after the drain, while
  RQ keeps each job for JOB_RESULT_TTL)."""

# Redis runs commands on one thread: it never uses more than one core.
SINGLE_THREADED = {"redis"}


def model(m, workers, cores):
    enqueue = m["enqueue_cost"]
    drains = m["drains"]
    drained = drains[workers] if workers in drains else drains[str(workers)]  # str: read back from JSON
    drain = drained["cost"]
    cpu_us = {
        "web": enqueue["web_cpu_us"],
        "worker": drain["worker_cpu_us"],
        "postgres": drain["postgres_cpu_us"],
        "redis": enqueue["redis_cpu_us"] + drain["redis_cpu_us"],
    }
    components = {}
    for name, us in cpu_us.items():
        # None: too little CPU to see in /proc's 10 ms ticks (a smoke run's tiny counts).
        one = 1e6 / us if us > 0 else None
        components[name] = {
            "cpu_us": us,
            "rate_one_core": one,
            "rate_machine": one if one is None or name in SINGLE_THREADED else cores * one,
        }
    total = sum(cpu_us.values())
    # All four share the machine's cores; Redis also stops at its one core.
    limits = ([cores * 1e6 / total if total > 0 else None]
              + [components[n]["rate_one_core"] for n in SINGLE_THREADED])
    machine = min((x for x in limits if x is not None), default=None)
    return {
        "workers": workers,
        "cores": cores,
        "components": components,
        "total_cpu_us": total,
        "first_to_saturate": max(cpu_us, key=cpu_us.get),
        "machine_rate": machine,
        "redis_commands": {"enqueue": enqueue["redis_commands"], "storage": drain["redis_commands"]},
        "redis_commands_by_name": {"enqueue": enqueue["redis_commands_by_name"],
                                   "storage": drain["redis_commands_by_name"]},
        "redis_bytes": {"queued": m["redis_bytes_per_submission"],
                        "finished": drained["redis_bytes_finished"]},
    }


def _rate(x):
    return f"{x:14.0f}/s" if x is not None else f"{'-':>16}"


def table(c):
    lines = [f"capacity model: per submission (storage by {c['workers']} worker(s); {c['cores']} cores)",
             f"  Redis commands   enqueue (web) {c['redis_commands']['enqueue']:6.1f}   "
             f"storage (worker) {c['redis_commands']['storage']:6.1f}",
             f"  Redis bytes      queued {c['redis_bytes']['queued']:8.0f}   "
             f"finished, kept for JOB_RESULT_TTL {c['redis_bytes']['finished']:8.0f}",
             f"  {'component':<10} {'CPU us/submission':>18} {'saturates 1 core at':>20} "
             f"{'the machine at':>16}"]
    for name, x in c["components"].items():
        note = "  (one thread)" if name in SINGLE_THREADED else ""
        lines.append(f"  {name:<10} {x['cpu_us']:18.1f}     {_rate(x['rate_one_core'])} "
                     f"{_rate(x['rate_machine'])}{note}")
    lines.append(f"  {'all':<10} {c['total_cpu_us']:18.1f} {'':>20} {_rate(c['machine_rate'])}"
                 f"  (all sharing {c['cores']} cores)")
    lines.append(f"  first to saturate: {c['first_to_saturate']} (most CPU per submission)")
    return "\n".join(lines)
