"""The Brevitas test zoo: quantizer preset x BatchNorm x bias x output quantizer x width x io,
every pair of values covered (``fpga_mpq.testing.pairwise``). Shared by tests/ and hw_tests/."""

from __future__ import annotations

from fpga_mpq.testing import ACT_MODULES, BrevitasCase, pairwise

WEIGHTS = (
    "Int8WeightPerTensorFloat",
    "Int8WeightPerChannelFloat",
    "Int8WeightPerTensorFloatMSE",
    "Int8WeightPerTensorFixedPoint",
    "Int8WeightPerChannelFixedPointMSE",
    "Int8WeightNormL2PerChannelFixedPoint",
    "Int4WeightPerTensorFloatDecoupled",
    "SignedTernaryWeightPerTensorConst",
)
BIASES = (None, "Int32Bias", "Int16Bias", "Int8Bias")
OUTPUTS = (None, "Int8ActPerTensorFloat", "Int8ActPerTensorFixedPoint", "Uint8ActPerTensorFloat")
FACTORS = {
    "weight": WEIGHTS,
    "act": tuple(ACT_MODULES),
    "batchnorm": (True, False),
    "bias": BIASES,
    "out": OUTPUTS,
    "bits": (2, 3, 4, 5, 6, 7, 8),
    "io": ("parallel", "stream"),
}
ZOO = [BrevitasCase(**case) for case in pairwise(FACTORS)]
# Presets that cannot be exact, and the error each gives (README: "Brevitas quantizers").
REFUSED = {
    "ShiftedUint8WeightPerTensorFloat": "non-zero zero point",
    "SignedBinaryWeightPerTensorConst": "bipolar quantizer with a float scale",
}
