"""Patient-wise stratified splits: grouping, balance, determinism, leave-one-scanner-out, splits_final.json."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nnunet_phyjoint.cli import main as cli_main
from nnunet_phyjoint.metadata import CaseMeta, metadata_block
from nnunet_phyjoint.splits import (
    SplitWarning,
    format_fold_balance,
    leave_one_scanner_out_splits,
    make_splits,
    verify_splits,
    write_splits,
)


def _dataset_json(n_patients: int = 80, seed: int = 0) -> dict:
    """Patients with 1-3 images, ~20% malignant, 3 scanners, and duplicate groups that link patients."""
    rng = np.random.default_rng(seed)
    cases = []
    for p in range(n_patients):
        label = rng.choice(["normal", "benign", "malignant"], p=[0.2, 0.6, 0.2])
        scanner = f"S{p % 3}"
        for i in range(int(rng.integers(1, 4))):
            cases.append(CaseMeta(case_id=f"case_{p:03d}_{i}", label=str(label), patient=f"{p:03d}", scanner=scanner))
    # duplicates across patients (and classes): each pair must end up in one fold
    for k, members in enumerate([(0, 41), (5, 6), (17, 63, 70)]):
        for c in cases:
            if c.patient in {f"{m:03d}" for m in members} and c.case_id.endswith("_0"):
                c.duplicate_group = f"dup{k}"
    return {"channel_names": {"0": "US"}, "labels": {"background": 0, "lesion": 1}, "numTraining": len(cases),
            "file_ending": ".png", "phyjoint": metadata_block(cases, source="test")}


def _independent_groups(dj: dict) -> dict[str, set[str]]:
    """Case -> set of patients it must share a fold with (connected components, computed naively)."""
    cases = dj["phyjoint"]["cases"]
    comp = {c: {v["patient"]} for c, v in cases.items()}
    changed = True
    while changed:  # transitive closure over patients and duplicate groups
        changed = False
        for c, v in cases.items():
            for d, w in cases.items():
                linked = (v["duplicate_group"] is not None and v["duplicate_group"] == w["duplicate_group"]) or (
                    comp[c] & comp[d])
                if linked and comp[c] != comp[c] | comp[d]:
                    comp[c] = comp[d] = comp[c] | comp[d]
                    changed = True
    return comp


def test_no_patient_or_duplicate_group_in_two_folds():
    dj = _dataset_json()
    splits = make_splits(dj, n_folds=4, seed=0)
    assert len(splits) == 4
    all_cases = set(dj["phyjoint"]["cases"])
    val_fold = {}
    for i, s in enumerate(splits):
        assert set(s["train"]).isdisjoint(s["val"])
        assert set(s["train"]) | set(s["val"]) == all_cases
        for c in s["val"]:
            assert c not in val_fold
            val_fold[c] = i
    assert set(val_fold) == all_cases
    comp = _independent_groups(dj)
    for c, patients in comp.items():
        for d, others in comp.items():
            if patients & others:
                assert val_fold[c] == val_fold[d], (c, d)
    # the duplicate links span patients: 17, 63 and 70 form one group
    by_patient = {v["patient"]: val_fold[c] for c, v in dj["phyjoint"]["cases"].items()}
    assert by_patient["017"] == by_patient["063"] == by_patient["070"]
    assert by_patient["000"] == by_patient["041"]


def test_stratification_is_roughly_balanced():
    dj = _dataset_json(n_patients=120)
    labels = {c: v["class"] for c, v in dj["phyjoint"]["cases"].items()}
    overall = Counter(labels.values())
    n = len(labels)
    for s in make_splits(dj, n_folds=4, seed=3):
        val = Counter(labels[c] for c in s["val"])
        assert abs(len(s["val"]) - n / 4) < 0.1 * n
        for label in overall:
            assert abs(val[label] / len(s["val"]) - overall[label] / n) < 0.08, (label, val, overall)


def test_deterministic_for_a_seed_and_sorted():
    dj = _dataset_json()
    a, b = make_splits(dj, 4, seed=7), make_splits(dj, 4, seed=7)
    assert a == b
    assert a != make_splits(dj, 4, seed=8)
    for s in a:
        assert s["train"] == sorted(s["train"]) and s["val"] == sorted(s["val"])


def test_too_few_groups_and_bad_splits_are_refused():
    dj = _dataset_json(n_patients=3)
    with pytest.raises(ValueError, match="cannot fill 4 folds"):
        make_splits(dj, n_folds=4)
    dj = _dataset_json()
    splits = make_splits(dj, 4)
    leaked = [dict(s) for s in splits]
    moved = leaked[1]["val"][0]
    leaked[0] = {"train": [c for c in leaked[0]["train"] if c != moved], "val": leaked[0]["val"] + [moved]}
    from nnunet_phyjoint.metadata import load_case_metadata

    with pytest.raises(ValueError):
        verify_splits(leaked, load_case_metadata(dj))
    with pytest.raises(KeyError, match="phyjoint"):
        make_splits({"labels": {}}, 4)


def test_leave_one_scanner_out():
    dj = _dataset_json()
    cases = dj["phyjoint"]["cases"]
    splits = leave_one_scanner_out_splits(dj)
    assert [s["held_out_scanner"] for s in splits] == ["S0", "S1", "S2"]
    comp = _independent_groups(dj)
    for s in splits:
        assert {cases[c]["scanner"] for c in s["val"]} == {s["held_out_scanner"]}
        assert set(s["val"]) == {c for c, v in cases.items() if v["scanner"] == s["held_out_scanner"]}
        assert s["held_out_scanner"] not in {cases[c]["scanner"] for c in s["train"]}
        val_patients = set().union(*(comp[c] for c in s["val"]))
        assert not any(comp[c] & val_patients for c in s["train"])
    # patients 0 (S0) and 41 (S2) are duplicates: holding out S2 must drop patient 0 from training
    s2 = splits[2]
    assert not any(cases[c]["patient"] == "000" for c in s2["train"])


def test_fold_balance_table():
    dj = _dataset_json()
    splits = make_splits(dj, 4)
    table = format_fold_balance(splits, dj)
    lines = table.splitlines()
    assert lines[0].split() == ["fold", "side", "cases", "groups", "normal", "benign", "malignant"]
    assert len(lines) == 2 + 2 * 4
    val0 = lines[3].split()
    assert val0[:3] == ["0", "val", str(len(splits[0]["val"]))]


def _make_raw(nnunet_env: dict[str, Path], dj: dict, name: str = "Dataset777_Sim") -> Path:
    folder = nnunet_env["nnUNet_raw"] / name
    (folder / "imagesTr").mkdir(parents=True)
    for cid in dj["phyjoint"]["cases"]:
        (folder / "imagesTr" / f"{cid}_0000.png").write_bytes(b"")
    (folder / "dataset.json").write_text(json.dumps(dj))
    return folder


def test_write_splits_atomic_and_guarded(nnunet_env):
    dj = _dataset_json()
    raw = _make_raw(nnunet_env, dj)
    path = write_splits(777, n_folds=4, seed=0)
    assert path == nnunet_env["nnUNet_preprocessed"] / "Dataset777_Sim" / "splits_final.json"
    assert json.loads(path.read_text()) == make_splits(dj, 4, 0)
    assert write_splits(777, n_folds=4, seed=0) == path  # identical: fine
    with pytest.raises(FileExistsError, match="overwrite"):
        write_splits(777, n_folds=4, seed=1)
    write_splits(777, n_folds=4, seed=1, overwrite=True)
    assert json.loads(path.read_text()) == make_splits(dj, 4, 1)
    assert [p.name for p in path.parent.iterdir()] == ["splits_final.json"]  # no temp files left
    # metadata that disagrees with imagesTr is refused, naming the file
    (raw / "imagesTr" / "stray_0000.png").write_bytes(b"")
    with pytest.raises(ValueError, match="dataset.json"):
        write_splits(777, overwrite=True)


def test_loso_file_is_readable_by_nnunet_do_split_convention(nnunet_env):
    dj = _dataset_json()
    _make_raw(nnunet_env, dj)
    path = write_splits(777, leave_one_scanner_out=True)
    splits = json.loads(path.read_text())
    # nnUNetTrainer.do_split indexes splits[fold]['train'] and ['val'] only
    assert all(isinstance(s["train"], list) and isinstance(s["val"], list) for s in splits)
    assert splits[0]["held_out_scanner"] == "S0"


def test_split_command(nnunet_env, capsys):
    dj = _dataset_json()
    _make_raw(nnunet_env, dj)
    assert cli_main(["split", "-d", "777", "--folds", "3", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "malignant" in out and "splits_final.json" in out and "-f 0 1 2" in out
    splits = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset777_Sim" / "splits_final.json").read_text())
    assert splits == make_splits(dj, 3, 2)
    assert cli_main(["split", "-d", "777"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(["split", "-d", "778"]) == 1
    assert "Dataset778" in capsys.readouterr().err


def test_leave_one_scanner_out_keeps_small_scanners_in_training():
    dj = _dataset_json()
    cases = dj["phyjoint"]["cases"]
    counts = {s: sum(v["scanner"] == s for v in cases.values()) for s in ("S0", "S1", "S2")}
    smallest = min(counts, key=counts.get)
    splits = leave_one_scanner_out_splits(dj, min_cases=counts[smallest] + 1)
    held = [s["held_out_scanner"] for s in splits]
    assert smallest not in held and len(held) == 2
    for s in splits:  # the small scanner's images train every fold (bar patients shared with the held-out one)
        assert smallest in {cases[c]["scanner"] for c in s["train"]}
    with pytest.raises(ValueError, match="no scanner has"):
        leave_one_scanner_out_splits(dj, min_cases=10**6)


# ------------------------------------------------------------------ BUS-BRA's published partition
def _bus_bra_like(nnunet_env) -> dict:
    """Six BUS-BRA-like cases of four patients; BUSBRA_0003_s and BUSBRA_0004_s are near-duplicates."""
    cases = []
    for image, patient, dup in (("0001-l", "1", None), ("0001-r", "1", None), ("0002-s", "2", None),
                                ("0003-s", "3", "dup0001"), ("0004-s", "4", "dup0001"), ("0005-s", "5", None)):
        cid = "BUSBRA_" + image.replace("-", "_")
        cases.append(CaseMeta(cid, "benign", patient=patient, scanner="GE",
                              source_files=[f"Images/bus_{image}.png", f"Masks/mask_{image}.png"], duplicate_group=dup))
    dj = {"channel_names": {"0": "US"}, "labels": {"background": 0, "lesion": 1}, "numTraining": len(cases),
          "file_ending": ".png", "phyjoint": metadata_block(cases, source="bus-bra")}
    folder = nnunet_env["nnUNet_raw"] / "Dataset779_BUSBRA"
    (folder / "imagesTr").mkdir(parents=True)
    for c in cases:
        (folder / "imagesTr" / f"{c.case_id}_0000.png").write_bytes(b"")
    (folder / "dataset.json").write_text(json.dumps(dj))
    return dj


def _partition(tmp_path: Path, folds: dict[str, str], header: str = "ID,Pathology,kFold,valid_1,valid_2") -> Path:
    path = tmp_path / "5-fold-cv.csv"
    path.write_text("\ufeff" + header + "\n" + "".join(f"bus_{i},benign,{k},1,0\n" for i, k in folds.items()))
    return path


def test_bus_bra_published_partition_becomes_the_folds(nnunet_env, tmp_path, capsys):
    from nnunet_phyjoint.metadata import load_case_metadata
    from nnunet_phyjoint.published_partition import bus_bra_partition_splits

    dj = _bus_bra_like(nnunet_env)
    folds = {"0001-l": "1", "0001-r": "1", "0002-s": "2", "0003-s": "2", "0004-s": "1", "0005-s": "2"}
    splits, warnings = bus_bra_partition_splits(_partition(tmp_path, folds), load_case_metadata(dj))
    assert splits == [
        {"train": ["BUSBRA_0002_s", "BUSBRA_0003_s", "BUSBRA_0005_s"],
         "val": ["BUSBRA_0001_l", "BUSBRA_0001_r", "BUSBRA_0004_s"]},
        {"train": ["BUSBRA_0001_l", "BUSBRA_0001_r", "BUSBRA_0004_s"],
         "val": ["BUSBRA_0002_s", "BUSBRA_0003_s", "BUSBRA_0005_s"]}]
    # the near-duplicates the partition splits are named, not silently accepted
    assert len(warnings) == 1 and "BUSBRA_0003_s (fold 1)" in warnings[0] and "BUSBRA_0004_s (fold 0)" in warnings[0]

    assert cli_main(["split", "-d", "779", "--bus-bra-partition", str(tmp_path / "5-fold-cv.csv")]) == 0
    captured = capsys.readouterr()
    assert "-f 0 1" in captured.out and "near-duplicate" in captured.err
    written = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset779_BUSBRA" / "splits_final.json").read_text())
    assert written == splits
    with pytest.raises(SystemExit):  # one kind of split at a time
        cli_main(["split", "-d", "779", "--bus-bra-partition", "x.csv", "--leave-one-scanner-out"])


def test_near_duplicates_across_a_split_are_an_error_or_a_warning_but_patients_always_an_error():
    a = CaseMeta("a", "benign", patient="1", scanner="GE", duplicate_group="dup1")
    b = CaseMeta("b", "benign", patient="2", scanner="GE", duplicate_group="dup1")
    c = CaseMeta("c", "malignant", patient="3", scanner="GE")
    c2 = CaseMeta("c2", "malignant", patient="3", scanner="GE")
    metadata = {m.case_id: m for m in (a, b, c, c2)}
    dup_split = [{"train": ["b", "c", "c2"], "val": ["a"]}, {"train": ["a"], "val": ["b", "c", "c2"]}]
    with pytest.raises(ValueError, match="both train and val"):  # our own folds never split near-duplicates
        verify_splits(dup_split, metadata)
    clean = [{"train": ["c", "c2"], "val": ["a", "b"]}, {"train": ["a", "b"], "val": ["c", "c2"]}]
    assert verify_splits(clean, metadata) == [] and verify_splits(clean, metadata, duplicates="report") == []
    notes = verify_splits(dup_split, metadata, duplicates="report")
    assert notes == [notes[0]] and "a (fold 0), b (fold 1) (dup1)" in notes[0]
    patient_split = [{"train": ["a", "b", "c"], "val": ["c2"]}, {"train": ["c2"], "val": ["a", "b", "c"]}]
    with pytest.raises(ValueError, match="patient:3"):  # a patient on both sides stays an error
        verify_splits(patient_split, metadata, duplicates="report")
    with pytest.raises(ValueError, match="'error' or 'report'"):
        verify_splits(dup_split, metadata, duplicates="ignore")


def test_write_splits_issues_the_partition_warnings_as_split_warnings(nnunet_env, tmp_path):
    _bus_bra_like(nnunet_env)
    folds = {"0001-l": "1", "0001-r": "1", "0002-s": "2", "0003-s": "2", "0004-s": "1", "0005-s": "2"}
    with pytest.warns(SplitWarning, match=r"BUSBRA_0003_s \(fold 1\), BUSBRA_0004_s \(fold 0\)"):
        write_splits("779", partition_csv=_partition(tmp_path, folds))


@pytest.mark.parametrize("change, message", [
    ({"0001-r": "2"}, "patient"),                           # one patient in two folds
    ({"0005-s": None}, "have no row"),                      # an image of the dataset without a row
    ({"0009-s": "1"}, "'bus_0009-s' is not in the dataset"),
    ({"0002-s": "x"}, "line 4: kFold 'x'"),
])
def test_bus_bra_partition_bad_input_is_an_error_naming_the_file(nnunet_env, tmp_path, change, message):
    from nnunet_phyjoint.metadata import load_case_metadata
    from nnunet_phyjoint.published_partition import bus_bra_partition_splits

    dj = _bus_bra_like(nnunet_env)
    folds = {"0001-l": "1", "0001-r": "1", "0002-s": "2", "0003-s": "2", "0004-s": "2", "0005-s": "1"}
    folds.update(change)
    path = _partition(tmp_path, {i: k for i, k in folds.items() if k is not None})
    with pytest.raises(ValueError, match=message) as err:
        bus_bra_partition_splits(path, load_case_metadata(dj))
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match=r"no column\(s\) \['kFold'\]"):
        bus_bra_partition_splits(_partition(tmp_path, folds, header="ID,Pathology,fold"), load_case_metadata(dj))
