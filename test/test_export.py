"""ONNX export: the graph reproduces PyTorch, stays lean, and the CLI fails cleanly on bad input."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from clrkdnet_core.checkpoint import save_checkpoint
from clrkdnet_core.errors import InputError
from clrkdnet_core.export.__main__ import main as export_main
from clrkdnet_core.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    max_abs_diff_onnxruntime,
    onnx_input_size,
)
from clrkdnet_core.models import build_model

STUDENT = "clrkdnet_resnet18_culane"


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build_model(STUDENT).eval()


@pytest.fixture(scope="module")
def student_weights(student, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "student.pth", student)


def test_cli_exports_dynamic_batch_graph_that_matches_pytorch(student, student_weights, tmp_path, capsys):
    out = tmp_path / "student.onnx"
    code = export_main(
        ["onnx", "--preset", STUDENT, "--weights", str(student_weights), "--out", str(out), "--dynamic-batch"]
    )
    assert code == 0
    assert "max |onnxruntime - torch|" in capsys.readouterr().out

    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version >= 16
    assert [i.name for i in graph.graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.graph.output] == [OUTPUT_NAME]
    output_dims = graph.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in output_dims] == ["batch", 192, 78]
    # Lean: the training-only segmentation decoder is not in the graph, grid_sample is a plain ONNX op.
    assert not [t.name for t in graph.graph.initializer if "seg" in t.name]
    op_types = {node.op_type for node in graph.graph.node}
    assert "GridSample" in op_types
    assert all(node.domain in ("", "ai.onnx") for node in graph.graph.node)

    # A batch of 3 real-looking inputs (another batch size than the traced one) through onnxruntime.
    images = torch.rand((3, 3, 320, 800), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = student(images).numpy()
    assert max_abs_diff_onnxruntime(out, images.numpy(), expected) < 1e-3


def test_cli_bad_preset_and_weights_exit_2(student_weights, tmp_path, capsys):
    from clrkdnet_core.cli import run_cli

    out = str(tmp_path / "x.onnx")
    assert (
        run_cli(
            export_main,
            ["onnx", "--preset", "no_such_preset", "--weights", str(student_weights), "--out", out],
        )
        == 2
    )
    assert "no_such_preset" in capsys.readouterr().err
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(student_weights.read_bytes()[:1000])
    assert run_cli(export_main, ["onnx", "--preset", STUDENT, "--weights", str(truncated), "--out", out]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "truncated.pth" in error and "\n" not in error
    wrong_model = "clrnet_resnet18_culane"  # a teacher checkpoint layout does not fit the student weights
    assert (
        run_cli(
            export_main, ["onnx", "--preset", wrong_model, "--weights", str(student_weights), "--out", out]
        )
        == 2
    )
    assert not (tmp_path / "x.onnx").exists()


def test_old_opset_is_refused(student, tmp_path):
    with pytest.raises(InputError, match="opset 11"):
        export_onnx(student, tmp_path / "old.onnx", opset=11)


@pytest.mark.slow
def test_fp16_export_is_strongly_typed_and_close(student, tmp_path):
    result = export_onnx(student, tmp_path / "fp16.onnx", fp16=True)
    graph = onnx.load(str(result.path))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert result.max_abs_diff is not None and result.max_abs_diff < result.tolerance


@pytest.mark.slow
def test_teacher_with_three_stages_exports(tmp_path):
    torch.manual_seed(1)
    teacher = build_model("clrnet_resnet18_culane").eval()
    result = export_onnx(teacher, tmp_path / "teacher.onnx", batch_size=2)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-3
    graph = onnx.load(str(result.path))
    assert sum(node.op_type == "GridSample" for node in graph.graph.node) == 3
    assert not np.any(["seg" in t.name for t in graph.graph.initializer])


def test_cli_exports_the_input_size_of_the_preset(tmp_path, capsys):
    # The shipped demo model's preset runs 160 x 400, not CULane's 320 x 800.
    models = Path(__file__).resolve().parents[1] / "models"
    out = tmp_path / "synthetic.onnx"
    arguments = ["onnx", "--preset", str(models / "clrkdnet_resnet18_synthetic.yaml")]
    arguments += ["--weights", str(models / "clrkdnet_resnet18_synthetic.pth"), "--out", str(out)]
    assert export_main(arguments) == 0
    assert "max |onnxruntime - torch|" in capsys.readouterr().out
    assert onnx_input_size(out) == (160, 400)
