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
