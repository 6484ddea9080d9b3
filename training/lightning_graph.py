"""Read MoveNet Lightning's int8 TFLite graph (Apache-2.0 weights) into the op list thunder_graph.py gives for
Thunder: Lightning's backbone is a MobileNetV2 of width 1.0 (Thunder's is 1.75), so its blocks up to block 12
(stride 16) fit the stem's 1 M-parameter budget where Thunder's stop at block 9. Weights and biases are
dequantised (per-channel scales); activations follow the tensor names (the fused ReLU6 is in the name)."""
import os

import numpy as np

from common import TEACHERS
from thunder_graph import live_ops

LIGHTNING = os.path.join(TEACHERS, "movenet_singlepose_lightning_int8_4.tflite")


def load_backbone(upto="block_12_add"):
    """(ops, norm) as thunder_graph.load_backbone: conv / add ops from the first conv to the op whose output
    tensor name contains `upto`; dead branches (the FPN's lateral convs) dropped. norm: input = pixel * a + b."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=LIGHTNING)
    it.allocate_tensors()
    td = {t["index"]: t for t in it.get_tensor_details()}

    def const(i):
        q = td[i]["quantization_parameters"]
        v = it.get_tensor(i).astype(np.float32)
        s = q["scales"].astype(np.float32)
        shape = [1] * v.ndim
        if v.ndim:
            shape[q["quantized_dimension"]] = -1
        return (v - q["zero_points"].reshape(shape)) * s.reshape(shape)

    def name(i):
        return td[i]["name"].split(";")[0]

    nodes = it._get_ops_details()
    start = next(k for k, n in enumerate(nodes) if n["op_name"] == "CONV_2D")
    produced = {nodes[start]["inputs"][0]: -1}
    ops = []
    for n in nodes[start:]:
        kind, ins, out = n["op_name"], n["inputs"], n["outputs"][0]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = const(ins[1]), const(ins[2])
            x_shape, y_shape = td[ins[0]]["shape"], td[out]["shape"]
            stride = int(x_shape[1] // y_shape[1])
            if kind == "CONV_2D":  # (O, kh, kw, I) -> (O, I, kh, kw)
                w, groups = w.transpose(0, 3, 1, 2), 1
            else:  # (1, kh, kw, C) -> (C, 1, kh, kw)
                w, groups = w[0].transpose(2, 0, 1)[:, None], w.shape[3]
            act = "relu6" if name(out).endswith("Relu6") else "none"
            ops.append({"op": "conv", "w": np.ascontiguousarray(w), "b": b, "stride": stride, "groups": groups,
                        "act": act, "src": produced[ins[0]]})
        elif kind == "ADD":
            ops.append({"op": "add", "a": produced[ins[0]], "b": produced[ins[1]]})
        else:
            raise ValueError("unexpected op in Lightning's backbone: " + kind)
        produced[out] = len(ops) - 1
        if upto in td[out]["name"]:
            break
    else:
        raise ValueError(f"no tensor named like {upto} in {LIGHTNING}")
    # the graph's own normalisation (SUB, MUL, SUB before the first conv): pixel / 127.5 - 1
    return live_ops(ops), (1.0 / 127.5, -1.0)
