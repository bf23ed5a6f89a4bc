"""The model card rul-export writes beside the ONNX file (docs/design.md, "The model artifact"):
what the service and every runtime read about a model, built from the exported graph, its
checkpoints, its data set and its measured test figures."""

from datetime import UTC, datetime
from typing import Any

import torch

from training.checkpoint import ServingGraph
from training.constants import HEALTH_STATES, MIN_CYCLES, PADDING_RULE
from training.data import Subset
from training.quality_stats import CHECK_NAMES, WINDOW_CHECK_NAMES, quality_card

CARD_FORMAT = "rul-model-card/1"


def graph_outputs(n_features: int) -> dict[str, str]:
    """The card's account of each graph output (name -> meaning, unit, shape)."""
    return {
        "rul": "cycles, >= 0, shape [batch]; a window flagged direction or out_of_order is answered "
        "for its cycles in order of wear (quality.wear_order)",
        "health_probs": "probabilities of health_states, shape [batch, 3]",
        "rul_lower": "lower bound of the prediction interval, cycles, >= 0, shape [batch]",
        "rul_upper": "upper bound of the prediction interval, cycles, shape [batch]; +inf where "
        "the interval is open above (predicted rul > interval.open_above): the RUL is at least rul_lower",
        "quality_flags": "int32 bit set per cycle and column, shape "
        f"[batch, window, {n_features}]: " + ", ".join(f"{bit} {name}" for bit, name in CHECK_NAMES.items()),
        "ood_score": "out-of-distribution score, shape [batch]; above 1: not like the training data",
        "window_flags": "int32 bit set per window, shape [batch]: "
        + ", ".join(f"{bit} {name}" for bit, name in WINDOW_CHECK_NAMES.items()),
        "rul_quantiles": "RUL quantiles at distribution.levels, cycles, non-decreasing, shape "
        "[batch, levels]; +inf above distribution.open_above (the distribution is open there)",
    }


def build_card(
    name: str,
    version: str,
    recipe: str,
    graph: ServingGraph,
    checkpoints: list[dict],
    checkpoint_paths: list[str],
    subset: Subset,
    test_metrics: dict[str, Any],
    learned_checks: dict[str, str],
    parity: dict[str, Any],
) -> dict[str, Any]:
    """The model card: what the service and every runtime read (DESIGN.md, "The model artifact")."""
    first = checkpoints[0]
    config, window_length, spec = first["train_config"], first["window_length"], subset.spec
    extra = config.get("extra_train_subsets")  # absent from checkpoints older than the flag
    pooled = f" (with those of {extra})" if extra else ""
    return {
        "format": CARD_FORMAT,
        "name": name,
        "version": version,
        "subsets": [config["subset"]],
        "dataset": spec.to_dict(),
        "window_length": window_length,
        "input_name": "readings",
        "input_features": list(spec.features),
        "outputs": graph_outputs(len(spec.features)),
        "quality": quality_card(graph.quality.stats),
        "health_states": list(HEALTH_STATES),
        "health_thresholds": first["health_thresholds"],
        "rul_cap": first["rul_cap"],
        "padding": {
            "rule": PADDING_RULE,
            "min_cycles": MIN_CYCLES,
            "description": "windows shorter than window_length are sent padded at the front with rows "
            "that are NaN in every column; the graph counts the real rows (short_history) and fills the "
            "padding with the first real cycle; fewer than min_cycles is refused",
        },
        **calibration_card(graph, test_metrics),
        "ensemble": ensemble_card(checkpoints),
        "metrics": {
            "test": {**test_metrics, "protocol": test_protocol(spec, first["rul_cap"])},
            "validation": [c["metrics"]["validation"] for c in checkpoints],
        },  # fmt: skip
        "preprocessing": preprocessing_card(first, spec, pooled),
        "training": {
            **({"recipe": f"{recipe} (training/recipes.py)"} if recipe else {}),
            "config": config,
            "model_config": first["model_config"],
            "checkpoints": list(checkpoint_paths),
            **learned_checks,  # order_check, stitch_check: the files the graph's learned checks came from
            "training_seconds": [c["training_seconds"] for c in checkpoints],
            "torch_version": torch.__version__,
        },
        "parity": parity,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def calibration_card(graph: ServingGraph, test_metrics: dict[str, Any]) -> dict[str, Any]:
    """The card's interval and distribution: how they were calibrated, and how they did on test."""
    levels = graph.distribution.bands.levels
    return {
        "interval": {
            "method": "split-conformal per predicted-RUL band (Mondrian)",
            **graph.interval.bands.to_dict(),
            "test_coverage": test_metrics.get("interval_coverage"),
            "test_coverage_capped_truth": test_metrics.get("interval_coverage_capped_truth"),
            "test_mean_width": test_metrics.get("interval_mean_width"),
        },
        "distribution": {
            "method": "conformal predictive distribution per predicted-RUL and history band "
            "(training/distribution.py)",
            **graph.distribution.bands.to_dict(),
            "test_share_below": dict(
                zip(map(str, levels), test_metrics.get("quantile_share_below", []), strict=False)
            ),  # fmt: skip
        },
    }


def ensemble_card(checkpoints: list[dict]) -> dict[str, Any]:
    config = checkpoints[0]["train_config"]
    return {
        "members": len(checkpoints),
        "seeds": [c["train_config"]["seed"] for c in checkpoints],
        "folds": [c["train_config"]["fold"] for c in checkpoints] if config.get("folds") else None,
        "inference_cost": f"{len(checkpoints)} networks per window, outputs averaged",
    }


def test_protocol(spec: Any, rul_cap: float) -> str:
    truth = spec.written.get("test_rul") or "(no test files)"
    return (f"last window of each test unit vs the true RUL of {truth}; headline rmse_capped_truth: "
            f"truth capped at {rul_cap:g} (as published results), rmse: uncapped; intervals judged against "
            f"the uncapped truth; rmse_all_windows_capped: every test window vs the true RUL capped at "
            f"{rul_cap:g}")  # fmt: skip


def preprocessing_card(first: dict, spec: Any, pooled: str) -> dict[str, Any]:
    """What the networks read: the sensors (and why the others are not), the conditions."""
    read = first["preprocessing"]["feature_names"]
    literature = "left out by the literature's choice (constants.INFORMATIVE_SENSORS)"
    return {
        "sensors": read,
        "sensors_not_read": first["preprocessing"].get("not_read")
        or {name: literature for name in spec.sensors if name not in read},
        "operating_conditions": len(first["preprocessing"]["centroids"]),
        "normalisation": "z-score per operating condition, training units only" + pooled,
    }
