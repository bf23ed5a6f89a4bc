"""Take the shape computations out of an exported graph, so that it runs wholly on a GPU.

The window length and the columns are fixed per model; only the batch axis varies. Yet the
exporter computes some shapes at run time: `Shape(readings) -> Gather -> Concat -> Reshape`
around each LSTM, and zeros of the batch's size for the LSTM's initial state. ONNX Runtime's
GPU providers run such small integer chains on the CPU, with copies between host and device
in the middle of every call. `make_static` rewrites them:

- an LSTM's initial state that is all zeros is dropped (absent means zeros in ONNX);
- a Reshape to a computed shape gets a constant shape: the graph is run at two batch sizes,
  the axis of the output that changes with the batch becomes -1, the others their size;
- nodes whose inputs are all constants (the exporter's reordering of the LSTM weights) are
  computed once, here, and stored as constants;
- nodes nothing uses any more are removed.

`runtime_shape_inputs` lists what is left: Shape/Size nodes, and inputs that ONNX Runtime
reads on the host (shapes, axes, slice bounds) fed by anything but a constant. Export refuses
a graph where it finds any (training/export.py); a test checks the shipped models.
"""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

# Inputs read on the host (by position): ONNX Runtime keeps them in CPU memory, so a value
# computed on the GPU for them is copied back every call.
HOST_INPUTS = {
    "Reshape": (1,),
    "Expand": (1,),
    "Slice": (1, 2, 3, 4),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "Tile": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "ReduceSum": (1,),
    "ReduceMean": (1,),
    "ReduceMax": (1,),
    "ReduceMin": (1,),
    "ReduceProd": (1,),
    "CumSum": (1,),
    "Split": (1,),
    "Pad": (1, 2, 3),
    "TopK": (1,),
    "OneHot": (1,),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
}
SHAPE_OPS = ("Shape", "Size")
RECURRENT_STATE_INPUTS = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}  # initial_h, initial_c


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def runtime_shape_inputs(model: onnx.ModelProto) -> list[str]:
    """One line per shape computation left in the main graph (empty: none)."""
    graph = model.graph
    constants = _constants(graph)
    found = [f"{n.op_type} node {n.name!r} reads the shape of {n.input[0]!r}"
             for n in graph.node if n.op_type in SHAPE_OPS]  # fmt: skip
    for node in graph.node:
        for position in HOST_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] and node.input[position] not in constants:
                found.append(f"{node.op_type} node {node.name!r} input {position} ({node.input[position]!r}) "
                             "is computed at run time")  # fmt: skip
    return found


def _is_all_zeros(name: str, producers: dict[str, onnx.NodeProto], constants: dict[str, np.ndarray]) -> bool:
    """Whether `name` is a constant zero broadcast or sliced to some shape."""
    if name in constants:
        return not np.any(constants[name])
    node = producers.get(name)
    if node is None:
        return False
    if node.op_type in ("Expand", "Slice", "Reshape", "Unsqueeze", "Squeeze", "Identity"):
        return _is_all_zeros(node.input[0], producers, constants)
    if node.op_type == "ConstantOfShape":
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        return value is None or not np.any(numpy_helper.to_array(value))
    return False


def _shapes_at(model: onnx.ModelProto, names: list[str], batch: int) -> dict[str, tuple[int, ...]]:
    """The shapes that the tensors `names` take when the graph runs on `batch` windows."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    values = [*probe.graph.value_info, *probe.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    outputs = {v.name for v in probe.graph.output}
    for name in names:
        if name not in outputs:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, types[name], None))
    feeds = {}
    for value in probe.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = np.zeros(
            dims, dtype=onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    return {name: tuple(out.shape) for name, out in zip(names, session.run(names, feeds), strict=True)}


def _batch_free_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, list[int]]:
    """For each tensor in `names` whose size varies with the batch on one axis only: its shape
    with that axis as -1 (a Reshape's target); the others are left out."""
    if not names:
        return {}
    at_2, at_3 = _shapes_at(model, names, 2), _shapes_at(model, names, 3)
    shapes = {}
    for name in names:
        dims = [a if a == b else -1 for a, b in zip(at_2[name], at_3[name], strict=True)]
        if dims.count(-1) <= 1:
            shapes[name] = dims
    return shapes


def _fold_constants(model: onnx.ModelProto) -> None:
    """Replace every node whose inputs are all initializers by its outputs, as initializers."""
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or not inputs or any(i not in constants for i in inputs):
            kept.append(node)
            continue
        single = onnx.helper.make_model(
            onnx.helper.make_graph([node], "fold", [], []), opset_imports=model.opset_import
        )
        outputs = ReferenceEvaluator(single).run(list(node.output), {i: constants[i] for i in inputs})
        for name, value in zip(node.output, outputs, strict=True):
            constants[name] = value
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    del graph.node[:]
    graph.node.extend(kept)


def _remove_unused(graph: onnx.GraphProto) -> None:
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    used_initializers = [t for t in graph.initializer if t.name in needed]
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.initializer[:]
    graph.initializer.extend(used_initializers)
    live_values = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(live_values)


def make_static(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its shape computations folded (see the module's text); raises if any is
    left, naming it."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    constants = _constants(graph)
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        for position in RECURRENT_STATE_INPUTS.get(node.op_type, ()):
            if (
                position < len(node.input)
                and node.input[position]
                and _is_all_zeros(node.input[position], producers, constants)
            ):
                node.input[position] = ""
    computed = [n for n in graph.node if n.op_type == "Reshape" and n.input[1] not in constants]
    shapes = _batch_free_shapes(model, [n.output[0] for n in computed])
    for node in computed:
        if node.output[0] in shapes:
            name = f"{node.name}_static_shape"
            graph.initializer.append(
                numpy_helper.from_array(np.array(shapes[node.output[0]], dtype=np.int64), name)
            )
            node.input[1] = name
    _fold_constants(model)
    _remove_unused(graph)
    left = runtime_shape_inputs(model)
    if left:
        raise ValueError("shape computations left in the exported graph: " + "; ".join(left))
    onnx.checker.check_model(model)
    return model
