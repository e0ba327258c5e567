import json

import numpy as np
import pytest

import mlip.data.readers.mptrj as mptrj
from mlip.data import DataError, open_dataset
from mlip.data.readers import ExtXYZDataset, MPtrjDataset

# 1 kBar = 0.1 GPa; 1 GPa in eV/Å^3 = 1e9 Pa * 1e-30 m^3 / e (CODATA 2014 e, as ASE's units)
KBAR_IN_EV_A3 = 0.1 * 1e9 * 1e-30 / 1.6021766208e-19


@pytest.fixture
def json_path(data_dir):
    return data_dir / "mptrj" / "MPtrj_sample_DERIVED_from_ffast.json"


def test_stress_kbar_vasp_sign_to_ase(json_path):
    ds = open_dataset(json_path)
    assert isinstance(ds, MPtrjDataset) and len(ds) == 10
    raw = json.load(open(json_path))["mp-100"]["mp-100-0-1"]
    assert raw["stress"][0][0] == 0.52239391  # kBar, VASP sign: positive = compressive
    frame = ds[0]
    assert frame.stress[0, 0, 0].item() == pytest.approx(-0.52239391 * KBAR_IN_EV_A3, rel=1e-9)
    assert frame.stress[0, 0, 0].item() == pytest.approx(-3.2605263565708373e-4, rel=1e-8)
    assert frame.name == "mp-100/mp-100-0-1"


def test_json_equals_converter_extxyz(json_path, data_dir):
    ds = open_dataset(json_path)
    xyz = ExtXYZDataset(data_dir / "mptrj" / "mptrj_ffast_first10.extxyz", energy_key="corrected_total_energy")
    for a, b in zip(ds, xyz):
        np.testing.assert_allclose(a.pos, b.pos, atol=1e-8)
        np.testing.assert_allclose(a.cell, b.cell, atol=1e-8)
        np.testing.assert_allclose(a.forces, b.forces, atol=1e-10)
        np.testing.assert_allclose(a.stress, b.stress, atol=1e-12)
        assert a.energy.item() == pytest.approx(b.energy.item(), abs=1e-8)


def test_corrected_and_uncorrected(json_path):
    corrected = MPtrjDataset(json_path)[5]
    uncorrected = MPtrjDataset(json_path, energy="uncorrected")[5]
    assert corrected.energy.item() == pytest.approx(-55.2744929)
    assert uncorrected.energy.item() == pytest.approx(-54.2684929)
    assert "magmom" in corrected and corrected.magmom.shape == (6,)


def test_index_independent_of_chunking_and_escapes(tmp_path, json_path, monkeypatch):
    # a key with an escaped quote and braces inside strings must not confuse the scanner
    data = json.load(open(json_path))
    first = data["mp-100"]["mp-100-0-1"]
    tricky = {'mp-"1"{': {'id-\\"x\\"-[': first, "plain": first}, "mp-2": {"a{b}": first}}
    path = tmp_path / "tricky.json"
    path.write_text(json.dumps(tricky))
    full = mptrj.index_mptrj_json(str(path))
    assert len(full) == 3
    for chunk in (1, 2, 3, 7, 64):
        monkeypatch.setattr(mptrj, "CHUNK", chunk)
        np.testing.assert_array_equal(mptrj.index_mptrj_json(str(path)), full)
    ds = MPtrjDataset(path)
    assert ds.frame_id(0) == 'id-\\"x\\"-['
    assert ds[2].energy.item() == pytest.approx(first["corrected_total_energy"])


def test_truncated_json_is_reported(tmp_path, json_path):
    text = json_path.read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"cut.json.*truncated"):
        MPtrjDataset(path)


def test_missing_key_names_frame_and_key(tmp_path, json_path):
    data = json.load(open(json_path))
    del data["mp-10000"]["mp-10000-1-1"]["force"]
    path = tmp_path / "noforce.json"
    path.write_text(json.dumps(data))
    ds = MPtrjDataset(path)
    ds[5]
    with pytest.raises(DataError, match=r"noforce.json, frame 6, key 'force'"):
        ds[6]


def test_index_is_cached(json_path, monkeypatch):
    MPtrjDataset(json_path)
    monkeypatch.setattr(mptrj, "index_mptrj_json", lambda *a, **k: pytest.fail("index was rebuilt"))
    assert len(MPtrjDataset(json_path)) == 10


def test_extxyz_form_energy_choice(data_dir):
    path = data_dir / "mptrj" / "mptrj_ffast_first10.extxyz"
    ds = open_dataset(path)
    assert ds.format_name == "mptrj_extxyz"
    assert ds[5].energy.item() == pytest.approx(-55.2744929)  # corrected_total_energy
    assert open_dataset(path, energy="uncorrected")[5].energy.item() == pytest.approx(-54.2684929)
    si = open_dataset(data_dir / "mptrj" / "mp-149_nequix.extxyz")  # names it mp2020_corrected_energy
    assert si.format_name == "mptrj_extxyz" and si[0].energy.item() == pytest.approx(-10.85063528)
    assert si[0].name == "mp-655585-0-0"
