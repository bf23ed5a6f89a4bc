"""Loaded by Python at start-up when this folder is on PYTHONPATH (`bench.c1_cost --model-run
cached` puts it there for both servers): with RUL_BENCH_CACHED_RUN=1, every ONNX Runtime run
answers the cached outputs of its first run on the same inputs, so that a served request costs
everything but the model's run. Benchmarks only: never on a served path."""

import os

if os.environ.get("RUL_BENCH_CACHED_RUN") == "1":
    import onnxruntime as ort

    _real_run = ort.InferenceSession.run
    _cache: dict = {}

    def _cached_run(self, output_names, input_feed, *args, **kwargs):  # type: ignore[no-untyped-def]
        key = (id(self), tuple(output_names or ()), tuple(v.tobytes() for v in input_feed.values()))
        if key not in _cache:
            _cache[key] = _real_run(self, output_names, input_feed, *args, **kwargs)
        return [value.copy() for value in _cache[key]]

    ort.InferenceSession.run = _cached_run
