"""Write a Triton Inference Server model repository for an exported model, so the same ONNX
file serves on Triton (or KServe with the Triton runtime) and our Open Inference Protocol
clients keep working:

    DIR/<name>/config.pbtxt      onnxruntime backend, dynamic batching, the card's shapes
    DIR/<name>/1/model.onnx      the exported file, unchanged
    DIR/<name>/card.json         the model card, for people (Triton ignores it)
"""

import json
import shutil
from pathlib import Path
from typing import Any

MAX_BATCH_SIZE = 1024
MAX_QUEUE_DELAY_US = 2000  # wait up to 2 ms to gather a batch


def _tensor(name: str, dims: list[int], reshape_to_scalar: bool = False, data_type: str = "TYPE_FP32") -> str:
    reshape = "\n    reshape: { shape: [ ] }" if reshape_to_scalar else ""
    dims_text = ", ".join(map(str, dims))
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: [ {dims_text} ]{reshape}\n  }}'


def config_pbtxt(card: dict[str, Any], max_batch_size: int = MAX_BATCH_SIZE) -> str:
    """The Triton config: the batch axis is implicit (max_batch_size > 0), so dims omit it;
    per-window scalars (rul, bounds, ood_score, window_flags) are [1] reshaped to [] to match
    the graph's [batch]; the input-quality flags are INT32 [window, 24], the window flags INT32, the RUL
    quantiles [levels].
    A short history is sent as every other window is, padded at the front with NaN rows (the
    card's padding rule): the graph counts the real rows itself."""
    outputs = []
    for name in card["outputs"]:
        if name == "health_probs":
            outputs.append(_tensor(name, [len(card["health_states"])]))
        elif name == "quality_flags":
            outputs.append(
                _tensor(name, [card["window_length"], len(card["input_features"])], data_type="TYPE_INT32")
            )
        elif name == "window_flags":
            outputs.append(_tensor(name, [1], True, data_type="TYPE_INT32"))
        elif name == "rul_quantiles":
            outputs.append(_tensor(name, [len(card["distribution"]["levels"])]))
        else:
            outputs.append(_tensor(name, [1], True))
    return (
        f'name: "{card["name"]}"\n'
        'backend: "onnxruntime"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{_tensor(card['input_name'], [card['window_length'], len(card['input_features'])])}\n]\n"
        "output [\n" + ",\n".join(outputs) + "\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n}}\n"
        f'parameters {{ key: "model_version" value: {{ string_value: "{card["version"]}" }} }}\n'
    )


def write_triton_repo(onnx_path: Path, card: dict[str, Any], repo_dir: Path) -> Path:
    """Copy the model into `repo_dir/<name>/1/model.onnx` with its config; returns the model dir."""
    model_dir = repo_dir / card["name"]
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, model_dir / "1" / "model.onnx")
    (model_dir / "config.pbtxt").write_text(config_pbtxt(card))
    (model_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return model_dir
