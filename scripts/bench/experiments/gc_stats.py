"""twistd with GC timing (gc.callbacks), optionally gc.freeze() 2 s after start (experiment)."""
import gc
import os
import sys
import time

MODE = os.environ.get("BENCH_GC_MODE", "stock")
stats = {"n": [0, 0, 0], "t": [0.0, 0.0, 0.0], "start": 0.0, "collected": 0}


def cb(phase, info):
    if phase == "start":
        stats["start"] = time.perf_counter()
    else:
        g = info["generation"]
        stats["n"][g] += 1
        stats["t"][g] += time.perf_counter() - stats["start"]
        stats["collected"] += info["collected"]


gc.callbacks.append(cb)


def dump():
    with open(os.environ["BENCH_GC_OUT"], "w") as f:
        f.write(f"mode={MODE} collections(gen0,1,2)={stats['n']}"
                f" seconds={[round(t, 3) for t in stats['t']]} collected={stats['collected']}"
                f" counts={gc.get_count()} frozen={gc.get_freeze_count()}\n")


from twisted.internet import reactor  # noqa: E402

if MODE == "freeze":
    def freeze():
        gc.collect()
        gc.freeze()
    reactor.callLater(2.0, freeze)
reactor.addSystemEventTrigger("before", "shutdown", dump)

from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
