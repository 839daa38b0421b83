"""ONNX Runtime execution providers: one rule for every encoder (image, text, fusion, ...)."""

from __future__ import annotations

from collections.abc import Sequence

# Fastest first: TensorRT (fp16, engine cache) -> CUDA -> CPU, among those this build offers.
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def resolve_providers(
    providers: Sequence[str] | str | None,
    available: Sequence[str],
    default: Sequence[str] = PROVIDER_ORDER,
) -> list[str]:
    """The providers to ask onnxruntime for.

    None -> ``default`` among the available ones; ``"auto"`` -> TensorRT -> CUDA -> CPU among the
    available; otherwise the given names (aliases trt/cuda/cpu/tensorrt accepted) in the given
    order, each checked to exist in this onnxruntime build (ValueError naming the ones that do).
    """
    if providers is None:
        chosen = [p for p in default if p in available]
        return chosen or list(available)
    if isinstance(providers, str):
        providers = [providers]
    if [p.lower() for p in providers] == ["auto"]:
        chosen = [p for p in PROVIDER_ORDER if p in available]
        return chosen or list(available)
    names: list[str] = []
    for name in providers:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            raise ValueError(
                f"execution provider '{name}' is not available in this onnxruntime build; "
                f"available: {', '.join(available)}"
            )
        if full not in names:
            names.append(full)
    if not names:
        raise ValueError(f"empty provider list; available: {', '.join(available)}")
    return names
