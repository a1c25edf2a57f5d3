"""Bit-width spec files: the default, and rejections that name the wrong key."""

import pytest

from fpga_mpq.errors import BadInput
from fpga_mpq.models.spec import DEFAULT_SPEC, load_spec, save_spec, spec_from_dict


def test_default_spec_is_genuinely_mixed():
    assert {layer.weight_bits for layer in DEFAULT_SPEC.layers} == {6, 4, 3}


def test_spec_round_trips_through_yaml(tmp_path):
    save_spec(DEFAULT_SPEC, tmp_path / "s.yaml")
    assert load_spec(tmp_path / "s.yaml") == DEFAULT_SPEC


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["layers"][1].update(weight_bitz=3), "unknown key 'weight_bitz' in layers\\[1\\]"),
        (lambda d: d["layers"][0].update(act_bits=0), "layers\\[0\\].act_bits = 0"),
        (lambda d: d["layers"][2].update(weight_bits=33), "layers\\[2\\].weight_bits = 33"),
        (lambda d: d["input"].update(bits=2.5), "input.bits"),
        (lambda d: d.update(extra=1), "unknown key 'extra' in the top level"),
        (lambda d: d["layers"][0].pop("units"), "missing key 'units'"),
        (lambda d: d.update(layers=[]), "non-empty"),
    ],
)
def test_bad_spec_names_the_key(mutate, message):
    d = DEFAULT_SPEC.to_dict()
    mutate(d)
    with pytest.raises(BadInput, match=message):
        spec_from_dict(d)


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("layers: [\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
