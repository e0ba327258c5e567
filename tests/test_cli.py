import json
import re
import subprocess
import sys

import numpy as np

from mlip.cli import BUNDLED, main


def test_quickstart_reads_every_bundled_dataset(data_dir, capsys):
    assert main(["quickstart", "--data", str(data_dir), "-q", "--data-only"]) == 0
    out = capsys.readouterr().out
    for name, _, _ in BUNDLED:
        assert name in out
    assert f"{len(BUNDLED)} datasets" in out
    assert re.search(r"rMD17 ethanol train_01\s+md17\s+1000\s", out)


def test_prepare_then_info(data_dir, tmp_path, capsys):
    src = data_dir / "mptrj" / "MPtrj_sample_DERIVED_from_ffast.json"
    out = tmp_path / "mptrj.mlip"
    assert main(["prepare", str(src), str(out), "-q", "--cutoff", "6"]) == 0
    meta = json.load(open(out / "metadata.json"))
    assert meta["n_structures"] == 10 and meta["statistics"]["cutoff"] == 6.0
    assert sorted(meta["statistics"]["elements"]) == [15, 16, 42, 72]
    assert main(["prepare", str(src), str(out), "-q"]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["info", str(out), "-q"]) == 0
    assert "mptrj.mlip" in capsys.readouterr().out


def test_prepare_with_reader_options(data_dir, tmp_path):
    src = data_dir / "mptrj" / "mptrj_ffast_first10.extxyz"
    out = tmp_path / "p"
    assert main(["prepare", str(src), str(out), "-q", "-o", "energy_key=corrected_total_energy"]) == 0
    from mlip.data import open_dataset

    assert open_dataset(out)[5].energy.item() == -55.2744929


def test_bad_input_exit_code_and_message(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, nuclear_charges=np.array([1, 1]), coords=np.zeros((1, 2, 3)), energies=np.zeros(1),
             forces=np.full((1, 2, 3), np.nan))
    assert main(["info", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "frame 0" in err and "forces" in err and "NaN" in err


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mlip", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "prepare" in result.stdout
