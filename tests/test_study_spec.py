"""Study files: every mistake is one line naming the key or file, before any run starts; readable cell
names; one study per directory; the course study files are valid and the W&B sweep export mirrors them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from studies.flags import FitParser, to_cli
from studies.main import check_extra_args, check_flags, main
from studies.naming import cell_name, format_value, safe_name, short_keys
from studies.spec import StudySpecError, load_yaml, parse_spec
from studies.store import StudyDirError, claim
from studies.wandb_sweep import sweep_config
from tests.cli_helpers import ROOT

GOOD = """name: depth
config: configs/mlp.yaml
grid:
  model.init_args.hidden_sizes: [[100], [100, 100, 100]]
seeds: [0, 1]
metric: val/acc
test: true
"""


def spec_of(text: str, tmp_path: Path):  # noqa: ANN201
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return parse_spec(path, text)


@pytest.fixture(scope="module")
def parser() -> FitParser:
    return FitParser()


@pytest.mark.parametrize(
    "text,message",
    [
        (GOOD + "epochs: 3\n", "unknown key 'epochs'"),
        (GOOD.replace("grid:\n  model.init_args.hidden_sizes: [[100], [100, 100, 100]]\n", "grid: {}\n"), "grid: empty"),
        (GOOD.replace("[[100], [100, 100, 100]]", "[]"), "grid.model.init_args.hidden_sizes: the list of values is empty"),
        (GOOD.replace("[[100], [100, 100, 100]]", "0.1"), "grid.model.init_args.hidden_sizes: must be a list of values, got 0.1"),
        (GOOD.replace("val/acc", "val/f1"), "metric: unknown metric 'val/f1' (known: val/acc, train/loss)"),
        (GOOD.replace("configs/mlp.yaml", "configs/nope.yaml"), "config: file 'configs/nope.yaml' not found"),
        (GOOD.replace("seeds: [0, 1]", "seeds: [0, 0]"), "seeds: must be a non-empty list of distinct non-negative integers"),
        (GOOD.replace("name: depth", "name: my study/1"), "name: must be a name"),
        (GOOD.replace("test: true", "test: maybe"), "test: must be true (= best), best, last or false"),
        (GOOD + "flags: {runs_dir: /tmp/x}\n", "flags: 'runs_dir' is set by the study itself"),
        (GOOD + "flags: {model.hidden_sizes: [5]}\n", "flags: 'model.init_args.hidden_sizes' is also varied"),
        (GOOD + "flags: {seed_everything: 3}\n", "'seed_everything' is set by seeds:"),
        (GOOD.replace("[[100], [100, 100, 100]]", "[[100], [100]]"), "two cells get the same name 'hidden_sizes=100'"),
        (GOOD + "cells: {'bad name': {trainer.max_steps: 5}}\n", "cells: 'bad name' is not a usable cell name"),
        (GOOD + "search: {trials: 2, params: {model.init_args.dropout: {low: 0, high: 0.5}}}\n", "search: give either grid/cells or search"),
        ("name: s\nconfig: configs/mlp.yaml\nsearch: {trials: 0, params: {model.init_args.dropout: {low: 0, high: 0.5}}}\n", "search.trials: must be a positive integer"),
        ("name: s\nconfig: configs/mlp.yaml\nsearch: {trials: 2, params: {model.init_args.optimizer.init_args.lr: {low: 0, high: 1, log: true}}}\n", "log: true needs low > 0"),
        ("name: [unclosed\n", "not valid YAML"),
        (GOOD + "reported: {metric: test/acc, values: {hidden_sizes=7: 0.5}}\n", "reported.values: 'hidden_sizes=7' is not a cell of this study (cells: hidden_sizes=100, hidden_sizes=100-100-100)"),
        (GOOD + "reported: {metric: test/acc, values: {hidden_sizes=100: 49.5}}\n", "reported.values.hidden_sizes=100: must be an accuracy as a fraction in [0, 1] (49.5% is 0.495)"),
        (GOOD + "reported: {metric: top5, values: {hidden_sizes=100: 0.5}}\n", "reported.metric: must be one of test/acc, val/acc, val/acc_last"),
        (GOOD.replace("test: true", "test: false") + "reported: {metric: test/acc, values: {hidden_sizes=100: 0.5}}\n", "reported.metric: test/acc needs test: true"),
    ],
)
def test_bad_study_files_fail_with_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StudySpecError) as exc:
        spec_of(text, tmp_path)
    assert message in str(exc.value) and str(exc.value).startswith(f"study file {tmp_path / 'study.yaml'}: ")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "grid_line,message",
    [
        ("  model.init_args.hidden_size: [[100]]", "cell 'hidden_size=100'"),  # train.py doesn't know the flag
        ("  data.batch_size: [0, 10]", "--data.batch_size: not of type PositiveInt"),
        ("  model.init_args.activation: [relu, swish]", "cell 'activation=swish'"),
        ("  trainer.max_steps: [-5]", "--trainer.max_steps must be an integer >= -1"),
        ("  model.init_args.optimizer.init_args.lr: [0.002, -0.002]", "cell 'lr=-0.002': --model.optimizer: Invalid learning rate: -0.002"),  # the optimizer's own check
        ("  model.init_args.optimizer: [{class_path: torch.optim.Adam, init_args: {betas: [0.9, 1.5]}}]", "--model.optimizer: Invalid beta parameter at index 1: 1.5"),
    ],
)
def test_flags_train_py_refuses_are_named_before_any_run(tmp_path: Path, parser: FitParser, monkeypatch: pytest.MonkeyPatch, grid_line: str, message: str) -> None:
    monkeypatch.setattr("studies.main.FitParser", lambda: parser)
    spec = spec_of(f"name: x\nconfig: configs/mlp.yaml\ngrid:\n{grid_line}\n", tmp_path)
    with pytest.raises(StudySpecError, match="study file .*: cell '|study file .*") as exc:
        check_flags(spec, [])
    assert message in str(exc.value), str(exc.value)


def test_command_line_flags_may_not_set_what_the_study_sets(tmp_path: Path) -> None:
    spec = spec_of(GOOD, tmp_path)
    check_extra_args(spec, ["--trainer.max_steps", "5", "--data.data_dir=/x"])
    for argv, message in ((["--model.hidden_sizes", "[4]"], "is varied by the study file"), (["--runs_dir", "x"], "set by the study"), (["--seed_everything", "3"], "seeds")):
        with pytest.raises(StudySpecError, match=message):
            check_extra_args(spec, argv)


def test_main_refuses_a_bad_file_with_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "s.yaml").write_text(GOOD.replace("val/acc", "accuracy"))
    assert main([str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: study file") and "metric: unknown metric 'accuracy'" in err and "\n" not in err
    assert not (tmp_path / "out").exists(), "nothing is created for a refused study"


def test_cell_names_are_readable_and_filesystem_safe() -> None:
    keys = ["model.init_args.optimizer.init_args.lr", "model.init_args.scheduler.init_args.lr", "data.batch_size", "trainer.max_steps"]
    assert short_keys(keys) == {keys[0]: "optimizer.lr", keys[1]: "scheduler.lr", keys[2]: "batch_size", keys[3]: "max_steps"}
    assert format_value(1e-6) == "1e-06" and format_value(0.002) == "0.002" and format_value(100.0) == "100" and format_value(True) == "true"
    assert format_value([100, 100, 100]) == "100-100-100"
    assert format_value({"class_path": "torch.optim.Adam", "init_args": {"lr": 0.1}}) == "Adam-lr0.1"
    assert cell_name({"data.batch_size": 200, "trainer.max_steps": 1500}, short_keys(["data.batch_size", "trainer.max_steps"])) == "batch_size=200,max_steps=1500"
    assert safe_name("a/b c:*?") == "a_b_c___"
    long = safe_name("x" * 300)
    assert len(long) <= 120 and long != safe_name("x" * 299), "long names end in a hash: still distinct"


def test_yaml_floats_without_a_dot_are_numbers_and_cli_values_round_trip() -> None:
    assert load_yaml("a: [1e-6, 1.0e-3, 100]")["a"] == [1e-6, 1e-3, 100]
    assert to_cli(1e-6) == "1.0e-06" and yaml.safe_load(to_cli(1e-6)) == 1e-6
    assert to_cli([100, 100]) == "[100, 100]" and to_cli(None) == "null" and to_cli(False) == "false"


def test_named_cells_and_grid_combine(tmp_path: Path) -> None:
    spec = spec_of("name: o\nconfig: configs/mlp.yaml\ncells:\n  sgd: {model.init_args.optimizer: {class_path: torch.optim.SGD, init_args: {lr: 0.002}}}\n"
                   "  adam: {model.init_args.optimizer: {class_path: torch.optim.Adam, init_args: {lr: 0.1}}}\ngrid: {data.batch_size: [100, 200]}\n", tmp_path)  # fmt: skip
    assert [c.name for c in spec.cells()] == ["sgd,batch_size=100", "sgd,batch_size=200", "adam,batch_size=100", "adam,batch_size=200"]
    assert spec.cells()[3].flags == {"model.init_args.optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.1}}, "data.batch_size": 200}


def test_every_course_study_file_is_valid(parser: FitParser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("studies.main.FitParser", lambda: parser)
    files = sorted((ROOT / "configs" / "studies").glob("*.yaml"))
    assert {f.stem for f in files} >= {"lr", "depth", "activation", "optimizer", "momentum", "weight_decay", "init", "batchnorm", "batch_size"}
    for path in files:
        spec = parse_spec(path, path.read_text())
        assert spec.seeds == [0, 1, 2] and spec.test, path
        check_flags(spec, ["--data.data_dir", "/tmp/data"])
    lr = parse_spec(ROOT / "configs/studies/lr.yaml", (ROOT / "configs/studies/lr.yaml").read_text())
    assert [c.name for c in lr.cells()] == ["lr=1e-06", "lr=1e-05", "lr=0.0001", "lr=0.001", "lr=0.01", "lr=0.1", "lr=1", "lr=10", "lr=100"]


def test_a_study_directory_refuses_a_different_study_but_takes_added_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    spec = spec_of(GOOD, tmp_path)
    claim(out, spec, [], spec.cells())
    claim(out, spec, [], spec.cells())  # the same study again: resumes
    assert not list(out.glob("study.*.yaml"))
    bigger = spec_of(GOOD.replace("[[100], [100, 100, 100]]", "[[100], [100, 100, 100], [50]]"), tmp_path)
    claim(out, bigger, [], bigger.cells())
    assert (out / "study.1.yaml").read_text() == GOOD, "the earlier study file is kept"
    assert list(json.loads((out / "study.json").read_text())["cells"]) == ["hidden_sizes=100", "hidden_sizes=100-100-100", "hidden_sizes=50"]
    with pytest.raises(StudyDirError, match="drops cells hidden_sizes=50"):
        claim(out, spec, [], spec.cells())
    other = spec_of(GOOD.replace("metric: val/acc", "metric: train/loss"), tmp_path)
    with pytest.raises(StudyDirError, match=r"holds a different study .*metric: 'val/acc' -> 'train/loss'"):
        claim(out, other, [], other.cells())
    with pytest.raises(StudyDirError, match="the command-line flags"):
        claim(out, bigger, ["--trainer.max_steps", "5"], bigger.cells())


def test_wandb_sweep_export_is_the_same_grid(tmp_path: Path, parser: FitParser) -> None:
    spec = spec_of(GOOD.replace("metric: val/acc", "metric: val/acc\nflags: {trainer.max_steps: 500}"), tmp_path)
    sweep = yaml.safe_load(yaml.safe_dump(sweep_config(spec, ["--data.data_dir", "/d"])))
    assert sweep["method"] == "grid" and sweep["metric"] == {"name": "val/acc", "goal": "maximize"} and sweep["program"] == "train.py"
    assert sweep["parameters"] == {"model.init_args.hidden_sizes": {"values": [[100], [100, 100, 100]]}, "seed_everything": {"values": [0, 1]}}
    assert sweep["command"] == ["${env}", "${interpreter}", "${program}", "fit", "--config", "configs/mlp.yaml", "--trainer.max_steps", "500", "--data.data_dir", "/d", "--run_name", "depth", "${args}"]
    named = spec_of("name: o\nconfig: configs/mlp.yaml\ncells:\n  adam: {model.init_args.optimizer: {class_path: torch.optim.Adam, init_args: {lr: 0.1}}}\n  deep: {model.init_args.hidden_sizes: [10, 10]}\n", tmp_path)
    values = sweep_config(named, [])["parameters"]["config"]["values"]
    assert len(values) == 2
    for value in values:  # each is a config train.py reads on top of the base config (as `--config=<value>`)
        assert parser.error(["--config", str(ROOT / "configs/mlp.yaml"), f"--config={value}"]) is None
    search = spec_of("name: s\nconfig: configs/mlp.yaml\nsearch: {trials: 5, params: {model.init_args.optimizer.init_args.lr: {low: 1.0e-5, high: 0.1, log: true}}}\n", tmp_path)
    exported = sweep_config(search, [])
    assert exported["method"] == "bayes" and exported["run_cap"] == 5
    assert exported["parameters"]["model.init_args.optimizer.init_args.lr"] == {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.1}


def test_export_wandb_sweep_writes_a_file_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    assert main([str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--export-wandb-sweep"]) == 0
    assert yaml.safe_load((tmp_path / "out" / "wandb_sweep.yaml").read_text())["parameters"]["seed_everything"] == {"values": [0, 1]}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["wandb_sweep.yaml"]


NAMED = """name: lrs
config: configs/mlp.yaml
cells:
  lr2e-3: {model.init_args.optimizer.init_args.lr: 0.002}
  lr1e-3: {model.init_args.optimizer.init_args.lr: 0.001}
seeds: [0, 1]
"""


def test_a_named_cell_whose_flags_changed_is_refused_not_reported_under_its_new_values(tmp_path: Path) -> None:
    """Editing a named cell's flags would have shown its old runs (lr 0.001) under the new value (1e-4)."""
    out = tmp_path / "out"
    out.mkdir()
    spec = spec_of(NAMED, tmp_path)
    claim(out, spec, [], spec.cells())
    same = spec_of(NAMED.replace("lr: 0.001}", "lr: 1.0e-3}").replace("init_args.optimizer.init_args.lr: 0.002", "optimizer.lr: 0.002"), tmp_path)
    claim(out, same, [], same.cells())  # the same values written another way: the same cells
    edited = spec_of(NAMED.replace("lr: 0.001}", "lr: 0.0001}"), tmp_path)
    with pytest.raises(StudyDirError, match=r"cell 'lr1e-3' now sets model.optimizer.lr: 0.001 -> 0.0001; its runs in .* ran the old"):
        claim(out, edited, [], edited.cells())
    renamed = spec_of(NAMED.replace("lr1e-3: {model.init_args.optimizer.init_args.lr: 0.001}", "lr1e-3: {model.init_args.optimizer.init_args.lr: 0.001}\n  lr1e-4: {model.init_args.optimizer.init_args.lr: 0.0001}"), tmp_path)
    claim(out, renamed, [], renamed.cells())  # a new value under a new name is a new cell
    assert json.loads((out / "study.json").read_text())["cells"]["lr1e-4"] == {"model.optimizer.lr": 0.0001}


def test_the_same_command_line_flags_in_another_order_or_spelling_are_the_same_study(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    spec = spec_of(GOOD, tmp_path)
    claim(out, spec, ["--trainer.max_steps", "5", "--data.batch_size", "32"], spec.cells())
    claim(out, spec, ["--data.batch_size=32", "--trainer.max_steps=5"], spec.cells())
    with pytest.raises(StudyDirError, match="the command-line flags"):
        claim(out, spec, ["--data.batch_size=64", "--trainer.max_steps=5"], spec.cells())


def test_an_unwritable_out_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, parser: FitParser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("studies.main.FitParser", lambda: parser)
    (tmp_path / "study.yaml").write_text(GOOD)
    (tmp_path / "a_file").write_text("")
    assert main([str(tmp_path / "study.yaml"), "--out", str(tmp_path / "a_file" / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out {tmp_path / 'a_file' / 'out'}: cannot create the study directory there (Not a directory)", err
