"""A pod's fetch of the large app's layers: cold node, warm node, and GNU tar beside them.

    .venv/bin/python bench/layer_cache_bench.py [--reps 3]

Needs the large app's packed layers (`bench/.work/bigapp/.aether/build/layers/`, made by
`bench/deploy_bench.py --apps large` or `aether deploy --pack-only --path
bench/.work/bigapp`). Serves its manifest and both layers on 127.0.0.1 (as the control
plane's download route does, without the redirect to storage) and times the real
`infra/images/fetcher/fetch.py` in four ways, each repetition into a fresh pod directory:

* no cache: every layer downloaded and extracted (what every pod did before the cache);
* cold node: a fresh cache directory, so the dependencies layer is downloaded, extracted
  into the cache, stamped and linked;
* warm node: the same cache again: the dependencies layer is verified against its stamp
  and hard-linked, never downloaded nor extracted;
* GNU tar: `tar -xzf` of the dependencies layer alone (no download, no checks): the
  floor for an extraction.

Prints the median and each time, and the fetcher's own split (download, extract, link) of
the last repetition.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FETCH = ROOT / "infra" / "images" / "fetcher" / "fetch.py"
LAYERS = HERE / ".work" / "bigapp" / ".aether" / "build" / "layers"


def serve(blobs: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            digest = self.path.strip("/").split("/")[1]
            body = blobs.get(digest)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def fetch(url: str, digest: str, dest: Path, cache: Path | None) -> tuple[float, str]:
    args = [sys.executable, str(FETCH), "--url", f"{url}/artifacts/{digest}/download"]
    args += ["--digest", digest, "--dest", str(dest), "--format", "manifest"]
    if cache is not None:
        args += ["--cache", str(cache)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"fetch failed ({done.returncode}): {done.stderr}")
    return seconds, done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    deps = (LAYERS / "deps" / "layer.tar.gz").read_bytes()
    app = (LAYERS / "app" / "layer.tar.gz").read_bytes()
    layers = [("deps", deps), ("app", app)]
    document = {
        "app": "bench-large",
        "layers": [
            {"digest": hashlib.sha256(d).hexdigest(), "role": r, "size": len(d)} for r, d in layers
        ],
        "schema": "aether.artifact/v2",
    }
    manifest = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    blobs = {hashlib.sha256(b).hexdigest(): b for b in (manifest, deps, app)}
    digest = hashlib.sha256(manifest).hexdigest()
    server, url = serve(blobs)
    work = Path(tempfile.mkdtemp(prefix="aether-layer-cache-bench-"))
    times: dict[str, list[float]] = {"no cache": [], "cold node": [], "warm node": [], "tar": []}
    logs: dict[str, str] = {}
    try:
        for rep in range(args.reps):
            cache = work / f"cache-{rep}"
            cache.mkdir()
            for kind, used in (("no cache", None), ("cold node", cache), ("warm node", cache)):
                pod = work / f"pod-{rep}-{kind.replace(' ', '-')}"
                pod.mkdir()
                seconds, logs[kind] = fetch(url, digest, pod / "app", used)
                times[kind].append(seconds)
                shutil.rmtree(pod)
            tree = work / f"tar-{rep}"
            tree.mkdir()
            layer = work / "deps.tar.gz"
            layer.write_bytes(deps)
            started = time.perf_counter()
            subprocess.run(["tar", "-xzf", str(layer), "-C", str(tree)], check=True)
            times["tar"].append(time.perf_counter() - started)
            shutil.rmtree(tree)
            shutil.rmtree(cache)
            print(
                f"rep {rep + 1}/{args.reps}: "
                + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                file=sys.stderr,
            )
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"large app: deps layer {len(deps) / 1e6:.1f} MB compressed, app layer "
        f"{len(app) / 1e3:.1f} kB; {args.reps} reps; {os.cpu_count()} cores; load avg "
        f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'fetch of one pod':34} {'median':>8}  each")
    labels = {
        "no cache": "no cache (download + extract all)",
        "cold node": "cold node (+ cache the deps layer)",
        "warm node": "warm node (deps linked from cache)",
        "tar": "GNU tar -xzf of the deps layer",
    }
    for kind, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{labels[kind]:34} {statistics.median(values):7.2f}s  {shown}")
    for kind in ("cold node", "warm node"):
        print(f"fetcher's log, {kind}:")
        for line in logs[kind].splitlines():
            if any(w in line for w in ("downloaded", "extracted", "linked", "cache", "ready")):
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
