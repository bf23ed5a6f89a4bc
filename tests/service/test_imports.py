import subprocess
import sys


def test_service_imports_and_builds_app_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        "from service.app import create_app\n"
        "from service.main import main\n"
        "create_app()\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_rul_score_cli_writes_csv(cmapss_dir, tmp_path):
    from service.score_cli import main
    from tests.conftest import MODELS_DIR

    out = tmp_path / "scores.csv"
    model = str(MODELS_DIR / "fd001.onnx")
    main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", model, "--providers", "cpu", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert len(lines) == 101 and lines[1].startswith("1,31,31,True,")


def test_rul_score_reads_rul_providers_like_the_service(cmapss_dir, monkeypatch):
    """Its own warning tells the user to set RUL_PROVIDERS=cuda: that must take effect."""
    import pytest

    from service.score_cli import main
    from tests.conftest import MODELS_DIR

    monkeypatch.setenv("RUL_PROVIDERS", "cuda")
    fleet, model = str(cmapss_dir / "test_FD001.txt.gz"), str(MODELS_DIR / "fd001.onnx")
    try:
        with pytest.raises(SystemExit) as refused:
            main([fleet, "--model", model, "--out", "/dev/null"])
    except pytest.fail.Exception:
        pytest.skip("CUDA works on this host: RUL_PROVIDERS=cuda is met")
    assert "RUL_PROVIDERS=cuda needs CUDAExecutionProvider" in str(refused.value.code)
    monkeypatch.setenv("RUL_PROVIDERS", "gpu")
    with pytest.raises(SystemExit, match="providers"):
        main([fleet, "--model", model, "--out", "/dev/null"])


def test_training_commands_without_the_training_extra_say_what_to_install():
    for command, entry in (("rul-train", "train"), ("rul-evaluate", "evaluate"), ("rul-export", "export")):
        code = f"import sys; sys.modules['torch'] = None\nfrom training.cli import {entry}\n{entry}()\n"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr == (
            f"{command}: needs the training extra, and torch is not installed: "
            "pip install torch==2.13.0 && pip install '.[train]'  (torch first: see the README)\n"
        )


def test_rul_score_takes_a_model_name_as_the_service_finds_it(cmapss_dir, tmp_path, monkeypatch):
    import pytest

    from service.score_cli import main
    from tests.conftest import MODELS_DIR, SHIPPED

    monkeypatch.setenv("RUL_MODELS_DIR", str(MODELS_DIR))
    fleet = str(cmapss_dir / "test_FD001.txt.gz")
    by_path, by_name = tmp_path / "path.csv", tmp_path / "name.csv"
    main([fleet, "--model", str(MODELS_DIR / "fd001.onnx"), "--providers", "cpu", "--out", str(by_path)])
    main([fleet, "--model", "FD001", "--providers", "cpu", "--out", str(by_name)])
    assert by_name.read_text() == by_path.read_text()
    with pytest.raises(SystemExit) as refused:
        main([fleet, "--model", "fd009", "--out", "/dev/null"])
    assert str(refused.value.code) == (
        f"rul-score: --model 'fd009' is neither a file nor a model in {MODELS_DIR} (RUL_MODELS_DIR; its "
        f"models: {', '.join(SHIPPED)}); give a <name>.onnx path or one of those names"
    )
