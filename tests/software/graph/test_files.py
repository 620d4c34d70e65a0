"""Graph files (JSON, YAML) and PyTorch conversion: round trips and one clear error per fault."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import yaml

from caterpillar.software.graph.files import (
    check_weights,
    graph_from_torch,
    load_graph,
    save_graph,
    state_dict_from_weights,
    torch_module,
)
from caterpillar.software.graph.model import GraphError, Optimizer, TrainingGraph

torch = pytest.importorskip("torch")
nn = torch.nn

EXAMPLE_YAML = """\
sizes: [64, 32, 10]
loss: softmax_ce
algorithm: mbgd
batch: 16
optimizer: {lr: 0.05, momentum: 0.9, weight_decay: 0.0001, schedule: step, step: 5, gamma: 0.5}
"""

EXAMPLE = TrainingGraph(sizes=(64, 32, 10), loss="softmax_ce", algorithm="mbgd", batch=16,
                        optimizer=Optimizer(lr=0.05, momentum=0.9, weight_decay=0.0001,
                                            schedule="step", step=5, gamma=0.5))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path, name, text) -> str:
    path = write(tmp_path, name, text)
    with pytest.raises(GraphError) as e:
        load_graph(path)
    return str(e.value)


# ---------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("name", ["g.yaml", "g.yml", "G.YAML"])
def test_load_the_documented_yaml_example(tmp_path, name):
    assert load_graph(write(tmp_path, name, EXAMPLE_YAML)) == EXAMPLE


def test_load_json_with_defaults(tmp_path):
    graph = load_graph(write(tmp_path, "g.json", '{"sizes": [4, 3], "loss": "mse"}'))
    assert graph == TrainingGraph(sizes=(4, 3), loss="mse")


GRAPHS = [
    EXAMPLE,
    TrainingGraph(sizes=(5, 4, 3)),
    TrainingGraph(sizes=(3, 1), loss="mse", optimizer=Optimizer(lr=1e-5, weight_decay=1e-7)),
    TrainingGraph(sizes=(8, 7, 6, 5), algorithm="mbgd", batch=4096,
                  optimizer=Optimizer(lr=0.1 / 3, momentum=0.999, gamma=1 / 3)),
]


@pytest.mark.parametrize("ext", [".json", ".yaml", ".yml"])
@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: "-".join(map(str, g.sizes)))
def test_save_then_load_is_identity(tmp_path, ext, graph):
    path = tmp_path / f"graph{ext}"
    save_graph(graph, path)
    assert load_graph(path) == graph
    assert load_graph(str(path)) == graph
    assert os.listdir(tmp_path) == [path.name], "no temporary file is left behind"


def test_saved_files_are_readable_text(tmp_path):
    save_graph(EXAMPLE, tmp_path / "g.json")
    save_graph(EXAMPLE, tmp_path / "g.yaml")
    assert json.loads((tmp_path / "g.json").read_text()) == EXAMPLE.to_dict()
    text = (tmp_path / "g.yaml").read_text()
    assert text.splitlines()[0] == "sizes: [64, 32, 10]"
    assert "loss: softmax_ce" in text.splitlines()


def test_save_replaces_an_existing_file_with_normal_permissions(tmp_path):
    path = write(tmp_path, "g.yaml", "old contents that are not a graph")
    save_graph(EXAMPLE, path)
    assert load_graph(path) == EXAMPLE
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["g.yaml"]


def test_save_errors(tmp_path):
    with pytest.raises(GraphError, match=r"unknown graph file extension '\.txt'; use one of "
                                         r"\.json, \.yaml, \.yml"):
        save_graph(EXAMPLE, tmp_path / "g.txt")
    with pytest.raises(GraphError, match="directory .*nowhere.* does not exist"):
        save_graph(EXAMPLE, tmp_path / "nowhere" / "g.json")
    with pytest.raises(GraphError, match="save_graph needs a TrainingGraph, not dict"):
        save_graph(EXAMPLE.to_dict(), tmp_path / "g.json")
    (tmp_path / "taken.json").mkdir()
    with pytest.raises(GraphError, match="cannot write graph file .*taken.json"):
        save_graph(EXAMPLE, tmp_path / "taken.json")
    assert sorted(os.listdir(tmp_path)) == ["taken.json"], "the temporary file is removed"


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(GraphError) as e:
        load_graph(path)
    assert str(e.value) == f"graph file {str(path)!r} does not exist"


def test_directory_is_not_a_graph_file(tmp_path):
    (tmp_path / "d.json").mkdir()
    with pytest.raises(GraphError, match=r"graph file '.*d\.json' is a directory"):
        load_graph(tmp_path / "d.json")


@pytest.mark.parametrize("name, shown", [("g.txt", "'.txt'"), ("graph", "no extension"),
                                         ("g.json.bak", "'.bak'")])
def test_unknown_extension_names_it_and_the_allowed_ones(tmp_path, name, shown):
    message = load_error(tmp_path, name, EXAMPLE_YAML)
    assert message == (f"{tmp_path / name}: unknown graph file extension {shown}; use one of "
                       f".json, .yaml, .yml")


def test_json_syntax_error_gives_file_and_line(tmp_path):
    message = load_error(tmp_path, "g.json", '{\n  "sizes": [4, 3],\n  "loss": mse\n}\n')
    assert message.startswith(f"{tmp_path / 'g.json'}: invalid JSON at line 3, column 11: ")


def test_yaml_syntax_error_gives_file_and_line(tmp_path):
    message = load_error(tmp_path, "g.yaml", "sizes: [4, 3]\nloss: mse\noptimizer: {lr: 0.1\n")
    assert message.startswith(f"{tmp_path / 'g.yaml'}: invalid YAML at line 4, column 1: ")
    message = load_error(tmp_path, "h.yaml", "sizes: [4, 3]\n  loss: mse\n")
    assert message.startswith(f"{tmp_path / 'h.yaml'}: invalid YAML at line 2, column 3: ")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_bytes(b"sizes: [4, 3]\nloss: \xff\n")
    with pytest.raises(GraphError, match=r"g\.yaml: not UTF-8 text \(bad byte at offset 20\)"):
        load_graph(path)


@pytest.mark.parametrize("name, text, what", [
    ("g.yaml", "", "an empty file"),
    ("g.yaml", "# only a comment\n", "an empty file"),
    ("g.yaml", "- 4\n- 3\n", "a list"),
    ("g.json", "[4, 3]", "a list"),
    ("g.json", '"4-3"', "a str"),
    ("g.yaml", "42\n", "a int"),
])
def test_not_a_mapping(tmp_path, name, text, what):
    assert load_error(tmp_path, name, text) == (
        f"{tmp_path / name}: a training graph must be a mapping (sizes: ..., loss: ...), "
        f"not {what}")


def test_unknown_keys_are_named(tmp_path):
    message = load_error(tmp_path, "g.yaml", "sizes: [4, 3]\nlos: mse\nbatchsize: 2\n")
    assert message.startswith(f"{tmp_path / 'g.yaml'}: unknown graph key(s) 'batchsize', "
                              f"'los'; ")
    assert all(key in message for key in ("algorithm", "batch", "loss", "optimizer", "sizes"))
    message = load_error(tmp_path, "g.json", '{"sizes": [4, 3], "optimizer": {"learning": 1}}')
    assert message.startswith(f"{tmp_path / 'g.json'}: unknown optimizer key(s) 'learning'; ")
    assert all(key in message for key in ("gamma", "lr", "momentum", "schedule", "step"))


def test_non_name_keys(tmp_path):
    message = load_error(tmp_path, "g.yaml", "sizes: [4, 3]\n1: 2\n")
    assert message == f"{tmp_path / 'g.yaml'}: graph keys must be names, not 1"
    message = load_error(tmp_path, "g.yaml", "sizes: [4, 3]\noptimizer: {lr: 0.1, 2: 3}\n")
    assert message == f"{tmp_path / 'g.yaml'}: optimizer keys must be names, not 2"


@pytest.mark.parametrize("text, field", [
    ("loss: mse\n", "sizes"),
    ("sizes: [4]\n", "sizes"),
    ("sizes: '4-3'\n", "sizes"),
    ("sizes: [4, 0]\n", "sizes[1]"),
    ("sizes: [4, 2.5]\n", "sizes[1]"),
    ("sizes: [4, 3]\nloss: hinge\n", "loss"),
    ("sizes: [4, 1]\n", "softmax_ce"),
    ("sizes: [4, 3]\nbatch: 16\n", "batch"),
    ("sizes: [4, 3]\nalgorithm: mbgd\nbatch: 0\n", "batch"),
    ("sizes: [4, 3]\nalgorithm: adam\n", "algorithm"),
    ("sizes: [4, 3]\noptimizer: {lr: -1.0}\n", "lr"),
    ("sizes: [4, 3]\noptimizer: {lr: fast}\n", "lr"),
    ("sizes: [4, 3]\noptimizer: {momentum: 1.0}\n", "momentum"),
    ("sizes: [4, 3]\noptimizer: {schedule: cosine}\n", "schedule"),
    ("sizes: [4, 3]\noptimizer: 0.1\n", "optimizer"),
    ("sizes: [4, 3]\nbatch: true\n", "batch"),
])
def test_bad_values_give_the_file_and_graph_validation_message(tmp_path, text, field):
    with pytest.raises(GraphError) as direct:
        TrainingGraph.from_dict(yaml.safe_load(text))
    message = load_error(tmp_path, "g.yaml", text)
    assert message == f"{tmp_path / 'g.yaml'}: {direct.value}"
    assert field in str(direct.value)


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 would read 1e-3 as a string; graph files read it as JSON does.
    graph = load_graph(write(tmp_path, "g.yaml",
                             "sizes: [4, 3]\noptimizer: {lr: 1e-3, weight_decay: 5E-4}\n"))
    assert graph.optimizer == Optimizer(lr=1e-3, weight_decay=5e-4)
    graph = load_graph(write(tmp_path, "h.yaml", "sizes: [4, 3]\noptimizer: {lr: 1.5e-2}\n"))
    assert graph.optimizer.lr == 1.5e-2


# ---------------------------------------------------------------------------------------------
# PyTorch


def mlp(*sizes, dtype=torch.float32) -> nn.Sequential:
    children = []
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k:
            children.append(nn.ReLU())
        children.append(nn.Linear(i, o, dtype=dtype))
    return nn.Sequential(*children)


def test_torch_round_trip_gives_identical_tensors():
    torch.manual_seed(1)
    module = mlp(6, 5, 4, 3)
    graph, weights = graph_from_torch(module)
    assert graph == TrainingGraph(sizes=(6, 5, 4, 3))
    assert [(w.shape, b.shape) for w, b in weights] == [((5, 6), (5,)), ((4, 5), (4,)),
                                                        ((3, 4), (3,))]
    assert all(a.dtype == np.float32 for pair in weights for a in pair)
    state = state_dict_from_weights(graph, weights)
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    rebuilt = torch_module(graph)
    rebuilt.load_state_dict(state)
    assert [type(c) for c in rebuilt] == [type(c) for c in module]
    original = module.state_dict()
    assert list(rebuilt.state_dict()) == list(original)
    for key, value in rebuilt.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, original[key]), key
    x = torch.randn(7, 6)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), module(x))


def test_torch_module_with_weights_and_no_aliasing():
    torch.manual_seed(2)
    module = mlp(3, 2)
    graph, weights = graph_from_torch(module, loss="mse")
    with torch.no_grad():
        module[0].weight.zero_()
    assert np.any(weights[0][0] != 0), "graph_from_torch copies the parameters"
    built = torch_module(graph, weights)
    weights[0][0][...] = 7
    assert not torch.any(built[0].weight == 7), "torch_module copies the weights"


def test_graph_kwargs_and_conversion_to_float32():
    module = mlp(4, 3, 2, dtype=torch.float64)
    graph, weights = graph_from_torch(module, loss="mse", algorithm="mbgd", batch=8,
                                      optimizer={"lr": 0.01, "momentum": 0.9})
    assert graph == TrainingGraph(sizes=(4, 3, 2), loss="mse", algorithm="mbgd", batch=8,
                                  optimizer=Optimizer(lr=0.01, momentum=0.9))
    assert weights[1][0].dtype == np.float32
    np.testing.assert_array_equal(weights[1][0], module[2].weight.detach().float().numpy())
    graph, _ = graph_from_torch(module, optimizer=Optimizer(lr=0.2))
    assert graph.optimizer.lr == 0.2


def test_relu_inplace_is_accepted():
    module = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True), nn.Linear(3, 2))
    assert graph_from_torch(module)[0].sizes == (3, 3, 2)


@pytest.mark.parametrize("module, message", [
    (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU()),
     "child 3 (ReLU) is last; the network must end in a Linear"),
    (nn.Sequential(nn.Conv1d(1, 1, 3), nn.ReLU(), nn.Linear(3, 2)),
     "child 0 (Conv1d) is not supported: only Linear and ReLU are"),
    (nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)),
     "child 1 (Sigmoid) is not supported"),
    (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2))),
     "child 2 (Sequential) is not supported"),
    (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False)),
     "child 2 (Linear) has no bias; the accelerator's layers are W a + b"),
    (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2)),
     "child 2 (Linear) has in_features 5, but child 0 (Linear) has out_features 3"),
    (nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)),
     "child 1 (Linear) follows child 0 (Linear) without a ReLU between them"),
    (nn.Sequential(nn.ReLU(), nn.Linear(3, 2)),
     "child 0 (ReLU) is the first child; a ReLU must follow a Linear"),
    (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.ReLU(), nn.Linear(3, 2)),
     "child 2 (ReLU) is after child 1 (ReLU); a ReLU must follow a Linear"),
    (nn.Sequential(), "the Sequential is empty"),
    (nn.Linear(4, 3), "graph_from_torch needs a torch.nn.Sequential, not Linear"),
])
def test_bad_sequentials_name_the_child(module, message):
    with pytest.raises(GraphError) as e:
        graph_from_torch(module)
    assert str(e.value).startswith(message)


def test_bad_values_in_a_module():
    module = mlp(4, 3, 2)
    with torch.no_grad():
        module[2].bias[1] = float("nan")
    with pytest.raises(GraphError, match=r"child 2 \(Linear\) bias has non-finite values"):
        graph_from_torch(module)
    with pytest.raises(GraphError, match="softmax_ce"):
        graph_from_torch(mlp(4, 1))
    with pytest.raises(GraphError, match="do not pass sizes"):
        graph_from_torch(mlp(4, 2), sizes=(4, 2))
    with pytest.raises(GraphError, match="unknown graph key.*'epochs'"):
        graph_from_torch(mlp(4, 2), epochs=3)


def test_weights_that_do_not_fit_the_graph():
    graph = TrainingGraph(sizes=(4, 3, 2))
    good = [(np.zeros((3, 4)), np.zeros(3)), (np.zeros((2, 3)), np.zeros(2))]
    assert [w.dtype for w, _ in check_weights(graph, good)] == [np.float32, np.float32]
    cases = [
        (good[:1], r"sizes \[4, 3, 2\] have 2 layer\(s\), but 1 \(W, b\) pair\(s\) were given"),
        ([good[0], (np.zeros((3, 2)), np.zeros(2))],
         r"layer 1: W must have shape \(2, 3\), not \(3, 2\)"),
        ([good[0], (np.zeros((2, 3)), np.zeros((2, 1)))],
         r"layer 1: b must have shape \(2,\), not \(2, 1\)"),
        ([(np.full((3, 4), np.inf), np.zeros(3)), good[1]], "layer 0: W has non-finite values"),
        ([good[0], np.zeros(3)], "layer 1: expected a .W, b. pair, not ndarray"),
        ([good[0], ("a", "b")], "layer 1: W is not a numeric array"),
        (5, "weights must be a list of .W, b. pairs, not int"),
    ]
    for weights, message in cases:
        with pytest.raises(GraphError, match=message):
            state_dict_from_weights(graph, weights)
    with pytest.raises(GraphError, match="layer 0: W must have shape"):
        torch_module(graph, [(np.zeros((4, 3)), np.zeros(3)), good[1]])


def test_missing_torch_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    graph = TrainingGraph(sizes=(4, 3))
    calls = [lambda: graph_from_torch(None), lambda: torch_module(graph),
             lambda: state_dict_from_weights(graph, [(np.zeros((3, 4)), np.zeros(3))])]
    for call in calls:
        with pytest.raises(GraphError, match=r"needs PyTorch, which is not installed: "
                                             r"pip install torch==2\.13\.0"):
            call()
