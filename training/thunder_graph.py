"""Read the MoveNet Thunder ONNX graph (Apache-2.0 weights) into a list of ops for transfer:
conv (weights, bias, stride, groups, TF 'same' pads, activation) and residual add."""
import os

import numpy as np

from common import TEACHERS


def load_backbone(upto="block_9_add"):
    """Ops of Thunder's MobileNetV2 backbone from the first conv to the tensor whose name contains `upto`.

    Returns (ops, norm) where ops is a list of dicts:
      {"op": "conv", "w": (O, I/g, k, k), "b": (O,), "stride", "groups", "act": "relu6"/"none", "src": int}
      {"op": "add", "a": int, "b": int}
    src/a/b index earlier op outputs (-1 = network input). norm: input = pixel * scale + shift."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(os.path.join(TEACHERS, "movenet-thunder.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    nodes = list(m.graph.node)
    start = next(k for k, n in enumerate(nodes) if n.op_type == "Conv")
    produced = {nodes[start].input[0]: -1}  # transposed, normalised input
    ops = []
    for n in nodes[start:]:
        if n.op_type == "Conv":
            at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = inits[n.input[1]]
            b = inits[n.input[2]] if len(n.input) > 2 else np.zeros(w.shape[0], np.float32)
            ops.append({"op": "conv", "w": w, "b": b, "stride": at["strides"][0], "groups": at.get("group", 1),
                        "act": "none", "src": produced[n.input[0]]})
            produced[n.output[0]] = len(ops) - 1
        elif n.op_type in ("Clip", "Relu"):
            k = produced[n.input[0]]
            assert ops[k]["act"] == "none"
            if n.op_type == "Clip":
                lo, hi = (float(inits[x]) for x in n.input[1:3])
                assert lo == 0.0 and hi == 6.0
                ops[k]["act"] = "relu6"
            else:
                ops[k]["act"] = "relu"
            produced[n.output[0]] = k
        elif n.op_type == "Add":
            ops.append({"op": "add", "a": produced[n.input[0]], "b": produced[n.input[1]]})
            produced[n.output[0]] = len(ops) - 1
        else:
            raise ValueError("unexpected op in backbone: " + n.op_type)
        if upto in n.output[0]:
            break
    ops = live_ops(ops)  # drop dead branches (e.g. FPN lateral convs that the graph interleaves with the backbone)
    norm = (float(inits["Const_40:0"].reshape(-1)[0]), -float(inits["Const_41:0"]))
    return ops, norm


def live_ops(ops):
    """The ops the last one depends on, with src/a/b renumbered."""
    live = {len(ops) - 1}
    for k in range(len(ops) - 1, -1, -1):
        if k in live:
            o = ops[k]
            live.update(s for s in ([o["src"]] if o["op"] == "conv" else [o["a"], o["b"]]) if s >= 0)
    remap, kept = {-1: -1}, []
    for k, o in enumerate(ops):
        if k in live:
            remap[k] = len(kept)
            o = dict(o)
            if o["op"] == "conv":
                o["src"] = remap[o["src"]]
            else:
                o["a"], o["b"] = remap[o["a"]], remap[o["b"]]
            kept.append(o)
    return kept
