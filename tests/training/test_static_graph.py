"""No shape computations in the exported graphs (training/static_graph.py): on a GPU provider,
ONNX Runtime would run them on the CPU, with copies between host and device every call."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import MODELS_DIR
from training.static_graph import make_static, runtime_shape_inputs

SHIPPED = sorted(MODELS_DIR.glob("*.onnx"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_graphs_have_no_shape_computations(path):
    model = onnx.load(str(path))
    assert runtime_shape_inputs(model) == []
    assert not {"Shape", "Size"} & {n.op_type for n in model.graph.node}
    # only the batch axis is free
    (readings,) = model.graph.input
    dims = readings.type.tensor_type.shape.dim
    assert dims[0].dim_param and all(d.dim_value > 0 for d in dims[1:])
    # and no LSTM starts from a state built at run time: absent means zeros
    for node in model.graph.node:
        if node.op_type == "LSTM":
            assert node.input[5:7] in ([], ["", ""], [""]), node.name


def _exporter_like_graph() -> onnx.ModelProto:
    """x (batch, 4, 6) -> y = Reshape(x, [batch, 2, -1]), the batch read with Shape -> Slice ->
    Concat (as torch.onnx writes it), beside an all-zero LSTM state of the batch's size."""
    ints = {"start": [0], "end": [1], "two": [2], "minus_one": [-1], "lstm_shape": [1]}
    initializers = [numpy_helper.from_array(np.array(v, dtype=np.int64), k) for k, v in ints.items()]
    initializers += [
        numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero"),
        numpy_helper.from_array(np.random.default_rng(0).normal(size=(1, 12, 6)).astype(np.float32), "W"),
        numpy_helper.from_array(np.random.default_rng(1).normal(size=(1, 12, 3)).astype(np.float32), "R"),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "start", "end"], ["batch"]),
        helper.make_node("Concat", ["batch", "two", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
        # zeros (1, batch, 3) for the LSTM's initial state
        helper.make_node("Concat", ["lstm_shape", "batch", "lstm_shape"], ["state_shape_1"], axis=0),
        helper.make_node("Mul", ["state_shape_1", "three"], ["state_shape"]),
        helper.make_node("Expand", ["zero", "state_shape"], ["h0"]),
        helper.make_node("Transpose", ["x"], ["x_tbf"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["x_tbf", "W", "R", "", "", "h0", "h0"], ["seq", "h_last"], hidden_size=3),
    ]
    initializers.append(numpy_helper.from_array(np.array([1, 1, 3], dtype=np.int64), "three"))
    graph = helper.make_graph(
        nodes,
        "exporter_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 6])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("h_last", TensorProto.FLOAT, None),
        ],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_shape_chains_are_found_and_folded_without_changing_the_results():
    model = _exporter_like_graph()
    found = runtime_shape_inputs(model)
    assert any("Shape node" in line for line in found)
    assert any("Reshape node" in line and "input 1" in line for line in found)
    assert any("Expand node" in line for line in found)

    static = make_static(model)
    assert runtime_shape_inputs(static) == []
    assert {n.op_type for n in static.graph.node} == {"Reshape", "Transpose", "LSTM"}
    (lstm,) = [n for n in static.graph.node if n.op_type == "LSTM"]
    assert list(lstm.input[5:]) == ["", ""]
    for batch in (1, 5):
        x = np.random.default_rng(batch).normal(size=(batch, 4, 6)).astype(np.float32)
        for before, after in zip(_run(model, x), _run(static, x), strict=True):
            assert before.shape == after.shape
            np.testing.assert_array_equal(before, after)


def test_a_shape_computation_that_cannot_be_folded_is_refused_by_name():
    model = _exporter_like_graph()
    # a reshape whose target depends on the batch twice over cannot get a constant shape
    model.graph.node.insert(
        3, helper.make_node("Concat", ["batch", "batch", "minus_one"], ["target2"], axis=0)
    )
    model.graph.node.append(helper.make_node("Reshape", ["y", "target2"], ["z"]))
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match=r"shape computations left.*Reshape node .* input 1 \('target2'\)"):
        make_static(model)
