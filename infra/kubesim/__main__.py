"""``python -m infra.kubesim --port PORT --kubeconfig PATH``: run the simulator until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from infra.kubesim.simulator import start_simulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Kubernetes API simulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)

    simulator = start_simulator(args.port)
    path = simulator.write_kubeconfig(args.kubeconfig)
    print(f"kubesim listening on {simulator.url}; kubeconfig written to {path}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
