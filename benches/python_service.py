"""The reference for the daemon benchmark: a plain Python service doing the
work of `lstm-ae serve` on `points` input with the threshold rule, written
the way a team would write it with confluent-kafka and onnxruntime.

consume points JSON -> window per key (T points, stride 1) -> batch (up to
--max-batch windows, or --max-wait-ms after the first) -> onnxruntime (the
same model.onnx, every output, as the daemon runs it) -> one embeddings JSON
record per window (the daemon's fields) and an anomaly record when
score >= threshold -> produce.

It is simpler than the daemon, which only makes it faster: no dead-letter
topic (a bad message is counted and skipped), no per-key TTL or key limit,
and offsets are auto-committed (at-most-once on a crash) where the daemon
commits only what the broker has acknowledged.

benches/serve/main.rs runs it with BENCH_PYTHON=1 (scripts/bench-serve.sh makes
its venv); it exits after --max-windows windows are produced and flushed.
"""

import argparse
import collections
import datetime
import json
import math
import os
import sys
import time

# ONNX Runtime reads its telemetry switch as it loads, as the daemon's does
# (src/infer/runtime.rs): set before the import, not after.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from confluent_kafka import Consumer, Producer


def rfc3339_ms(ms):
    """The daemon's timestamp format: RFC 3339, milliseconds, `Z`."""
    dt = datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", default="python-service")
    ap.add_argument("--embeddings-topic", required=True)
    ap.add_argument("--anomalies-topic", required=True)
    ap.add_argument("--model", required=True, help="a model directory (model.onnx, manifest.json)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-wait-ms", type=float, default=20.0)
    ap.add_argument("--max-windows", type=int, required=True, help="exit after this many windows")
    a = ap.parse_args()

    with open(f"{a.model}/manifest.json") as f:
        manifest = json.load(f)
    t = manifest["spec"]["window"]
    features = manifest["spec"]["features"]
    threshold = float(manifest["threshold"]["value"])
    version = str(manifest["model_version"])
    if features != 1:
        sys.exit("the Python reference service handles one-feature models only")

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(f"{a.model}/model.onnx", so, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in sess.get_outputs()]

    consumer = Consumer(
        {
            "bootstrap.servers": a.brokers,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )
    consumer.subscribe([a.topic])
    producer = Producer(
        {
            "bootstrap.servers": a.brokers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1000000,
        }
    )

    # Per key: the last T values and timestamps.
    buffers = {}
    batch = []  # (key, start_ts, end_ts, values)
    first_at = None
    produced = 0
    bad = 0
    started = time.monotonic()

    def flush_batch():
        nonlocal produced
        x = np.asarray([w[3] for w in batch], dtype=np.float32).reshape(len(batch), t, 1)
        res = dict(zip(outputs, sess.run(None, {"window": x})))
        emb, score = res["embedding"], res["score"]
        for i, (key, start, end, _) in enumerate(batch):
            s = float(score[i])
            rec = {
                "key": key,
                "window_start_ts": rfc3339_ms(start),
                "window_end_ts": rfc3339_ms(end),
                "model_version": version,
                "embedding": emb[i].tolist(),
                "score": s,
                "normalized_score": s / threshold,
            }
            kb = key.encode()
            while True:
                try:
                    producer.produce(a.embeddings_topic, json.dumps(rec).encode(), kb)
                    break
                except BufferError:
                    producer.poll(0.005)
            if s >= threshold:
                anomaly = dict(rec, threshold=threshold)
                del anomaly["embedding"]
                producer.produce(a.anomalies_topic, json.dumps(anomaly).encode(), kb)
        produced += len(batch)
        producer.poll(0)
        batch.clear()

    while produced < a.max_windows:
        msgs = consumer.consume(num_messages=1000, timeout=a.max_wait_ms / 1000.0)
        for m in msgs:
            if m.error():
                continue
            try:
                p = json.loads(m.value())
                key = p.get("key") or (m.key() or b"").decode()
                ts = int(p["ts"])
                v = float(p["value"])
                if not key or not math.isfinite(v):
                    raise ValueError("bad point")
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
                continue
            buf = buffers.get(key)
            if buf is None:
                buf = buffers[key] = (collections.deque(maxlen=t), collections.deque(maxlen=t))
            vals, tss = buf
            if tss and ts <= tss[-1]:
                continue  # late or duplicate
            vals.append(v)
            tss.append(ts)
            if len(vals) == t:
                if not batch:
                    first_at = time.monotonic()
                batch.append((key, tss[0], ts, list(vals)))
                if len(batch) >= a.max_batch:
                    flush_batch()
        if batch and (time.monotonic() - first_at) * 1000.0 >= a.max_wait_ms:
            flush_batch()
    producer.flush(60)
    consumer.close()
    wall = time.monotonic() - started
    print(
        f"python service: {produced} windows in {wall:.1f} s, {time.process_time():.1f} CPU s, "
        f"{bad} bad messages",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
