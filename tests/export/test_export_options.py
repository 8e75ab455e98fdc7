"""ExportOptions: one typed, JSON-able object for every export option; the keyword form
and the object form build the same plan; bad values are named."""

import pytest

from btseg.errors import ConfigError
from btseg.export import ExportOptions
from btseg.export.options import as_options
from btseg.export.plan import prepare


def test_round_trips_through_json_and_normalises():
    o = ExportOptions(targets="onnx", precisions=["fp32", "int8"], calib_data="data/x", input_size=[128, 128])
    assert o.targets == ("onnx",) and o.precisions == ("fp32", "int8") and o.input_size == (128, 128)
    assert ExportOptions.from_dict(o.to_dict()) == o


@pytest.mark.parametrize("bad", [{"calib_size": 0}, {"verify_n": -1}, {"nope": 1}])
def test_bad_values_and_unknown_names_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ExportOptions().replace(**bad)


def test_object_and_keywords_are_one_or_the_other():
    with pytest.raises(ConfigError, match="not both"):
        as_options(ExportOptions(), ["onnx"], None)
    assert as_options(None, ["openvino"], ["int8"], calib_data="d") == ExportOptions(
        targets=("openvino",), precisions=("int8",), calib_data="d")


def test_keyword_and_object_forms_plan_the_same(package, phantom):
    kw = prepare(package, ["onnx"], ["fp32"], calib_data=phantom, verify_n=4)
    ob = prepare(package, options=ExportOptions(targets=("onnx",), precisions=("fp32",), calib_data=phantom,
                                                verify_n=4))
    assert kw.jobs == ob.jobs and kw.spec == ob.spec and kw.opset == ob.opset
    assert kw.verify_images.indices == ob.verify_images.indices
