"""Run directories: a re-run never touches an earlier run, configs reproduce runs, refused runs leave nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from cli.lightning_cli import ConfigError
from datamodules import DataError
from lit_models.base import CheckpointMismatchError
from tests.cli_helpers import ROOT, base_args, run_cli


def fingerprint(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("logger", ["CSVLogger", None])  # None: the default W&B logger, offline
def test_rerunning_a_saved_config_never_changes_a_file_of_the_earlier_run(logger: str | None, batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "6", "--run_name", "exp", logger=logger))
    first = runs / "exp" / "version_0"
    before = fingerprint(first)
    assert "config.yaml" in before and (logger is None or "metrics.csv" in before)
    run_cli("fit", "--config", first / "config.yaml")  # the most natural thing a researcher does
    assert fingerprint(first) == before, "a re-run changed files of the earlier run"
    second = runs / "exp" / "version_1"
    assert (second / "config.yaml").is_file() and (second / "checkpoints" / "last.ckpt").is_file()
    assert (second / "metrics.csv").is_file() if logger else list((second / "wandb").glob("offline-run-*")), "the re-run has its own logger files"


def test_print_config_output_reproduces_the_run_under_the_same_name(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    overrides = ["--data.data_dir", str(batches_dir), "--data.download", "false", "--data.val_size", "30", "--runs_dir", str(runs),
                 "--trainer.logger", "false", "--trainer.max_steps", "2", "--model.hidden_sizes", "[8]"]
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", ROOT / "configs/mlp.yaml", *overrides, "--print_config")
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert yaml.safe_load(printed.read_text())["run_name"] == "mlp"
    cli = run_cli("fit", "--config", printed)
    assert Path(cli.trainer.default_root_dir) == runs / "mlp" / "version_0", "not runs/printed/: the printed config names its run"


@pytest.mark.parametrize(
    "case",
    ["bad trainer value", "bad optimizer value", "missing data", "mismatched checkpoint"],
)
def test_a_refused_or_failed_run_leaves_no_run_directory(case: str, batches_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    if case == "bad trainer value":
        with pytest.raises(SystemExit):
            run_cli("fit", *base_args(batches_dir, runs, "--trainer.val_check_interval", "0"))
    elif case == "bad optimizer value":
        with pytest.raises(ConfigError):
            run_cli("fit", *base_args(batches_dir, runs, "--model.optimizer.lr", "-1"))
    elif case == "missing data":
        with pytest.raises(DataError):
            run_cli("fit", *base_args(tmp_path / "nothing", runs))
    else:
        run_cli("fit", *base_args(batches_dir, tmp_path / "good", "--trainer.max_steps", "2", "--run_name", "good"))
        ckpt = tmp_path / "good" / "good" / "version_0" / "checkpoints" / "last.ckpt"
        with pytest.raises(CheckpointMismatchError):
            run_cli("test", "--ckpt_path", ckpt, "--model.hidden_sizes", "[32]", "--data.data_dir", batches_dir, "--runs_dir", runs, "--trainer.logger", "false")
    assert not list(runs.glob("*/version_*")), f"{case}: an empty run directory was left behind"


def test_default_root_dir_is_honoured_as_the_runs_directory(batches_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    args = base_args(batches_dir, tmp_path / "unused", "--trainer.max_steps", "1", "--run_name", "r")
    args[args.index("--runs_dir") : args.index("--runs_dir") + 2] = []
    cli = run_cli("fit", *args, "--trainer.default_root_dir", root)
    assert Path(cli.trainer.default_root_dir) == root / "r" / "version_0" and (root / "r" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_default_root_dir_and_a_different_runs_dir_are_refused(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", "--trainer.default_root_dir", tmp_path / "other"))
    assert exc.value.code == 2 and "--trainer.default_root_dir" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--checkpoint.dirpath", "--trainer.logger.save_dir"])
def test_paths_that_would_point_runs_at_one_folder_are_refused(flag: str, batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logger = "CSVLogger" if "logger" in flag else "false"
    with pytest.raises(SystemExit) as exc:
        run_cli("fit", *base_args(batches_dir, tmp_path / "runs", flag, str(tmp_path / "shared"), logger=logger))
    assert exc.value.code == 2 and flag in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*/version_*"))


def test_a_second_process_cannot_train_in_a_run_directory_in_use(batches_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from cli.run_dirs import RunDirBusy

    runs = tmp_path / "runs"
    run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "2", "--run_name", "busy"))
    run_dir = runs / "busy" / "version_0"
    holder = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from cli.run_dirs import lock_run_dir; "
                               f"from pathlib import Path; lock_run_dir(Path({str(run_dir)!r})); print('locked', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
        with pytest.raises(RunDirBusy, match=f"in use by process {holder.pid}"):
            run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "4", "--run_name", "busy", "--ckpt_path", "last"))
        after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
        assert after == before, "the refused process wrote into the run directory the other process trains in (status.json, CSV history)"
    finally:
        holder.communicate("")
    resumed = run_cli("fit", *base_args(batches_dir, runs, "--trainer.max_steps", "4", "--run_name", "busy", "--ckpt_path", "last"))
    assert resumed.trainer.global_step == 4, "the lock dies with its process"


# ------------------------------------------------------------------ a runs directory that cannot hold runs


def test_a_runs_dir_under_a_file_is_one_line_naming_the_flag_and_exit_2(batches_dir: Path, tmp_path: Path) -> None:
    from tests.cli_helpers import run_script

    (tmp_path / "somefile").write_text("not a folder")
    res = run_script("fit", *base_args(batches_dir, tmp_path / "somefile" / "runs", "--trainer.max_steps", "1"), timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last == f"error: --runs_dir {tmp_path / 'somefile' / 'runs'} cannot hold run directories: {tmp_path / 'somefile'} is a file, not a directory", last


def _root_flag(args: list[str], root: Path) -> list[str]:
    i = args.index("--runs_dir")
    return [*args[:i], *args[i + 2 :], "--trainer.default_root_dir", str(root)]


@pytest.mark.parametrize("flag", ["--runs_dir", "--trainer.default_root_dir"])
def test_an_unwritable_runs_dir_is_refused_naming_the_flag_that_chose_it(flag: str, batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from tests.cli_helpers import refusal

    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access, real_statvfs = os.access, os.statvfs
    # Tests run as root, whom chmod does not stop: the file system answers as a read-only mount (EROFS) would.
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == read_only else real_access(p, mode, **kw))
    monkeypatch.setattr(os, "statvfs", lambda p: type("V", (), {"f_flag": os.ST_RDONLY})() if Path(p) == read_only else real_statvfs(p))
    args = base_args(batches_dir, read_only / "runs", "--trainer.max_steps", "1")
    message = refusal(capsys, "fit", *(args if flag == "--runs_dir" else _root_flag(args, read_only / "runs")))
    assert message == f"error: {flag} {read_only / 'runs'} cannot hold run directories: {read_only} is on a read-only file system", message
    assert not (read_only / "runs").exists()


def test_an_immutable_runs_dir_is_refused_for_root_too(batches_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import subprocess

    from tests.cli_helpers import refusal

    locked = tmp_path / "immutable"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        message = refusal(capsys, "fit", *base_args(batches_dir, locked / "runs", "--trainer.max_steps", "1"))
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert message == f"error: --runs_dir {locked / 'runs'} cannot hold run directories: {locked} is not writable", message


@pytest.mark.parametrize("where", ["version directory", "lock file"])
def test_a_run_directory_that_fails_its_first_write_is_one_line_and_leaves_nothing(where: str, batches_dir: Path, tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up (or the mount turns read-only) between the check and the run: still no OSError traceback."""
    import errno
    import os

    import train
    from cli.run_dirs import RunDirUnwritable

    runs = tmp_path / "runs"
    real_mkdir, real_open = Path.mkdir, os.open

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "version_0":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        real_mkdir(self, *args, **kwargs)

    def open_(path: object, *args: object, **kwargs: object) -> int:
        if Path(path).name == ".lock" and Path(path).parent.name == "version_0":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir) if where == "version directory" else monkeypatch.setattr(os, "open", open_)
    with pytest.raises(RunDirUnwritable) as exc:
        run_cli("fit", *base_args(batches_dir, runs, "--run_name", "full", "--trainer.max_steps", "1"))
    reason = "No space left on device" if where == "version directory" else "Read-only file system"
    assert str(exc.value).startswith(f"cannot create or write the run directory {runs / 'full' / 'version_0'}: {reason}"), str(exc.value)
    assert "--runs_dir" in str(exc.value) and "\n" not in str(exc.value)
    assert RunDirUnwritable in train.USER_ERRORS, "python train.py prints it as one line, exit 2"
    assert not list(runs.glob("*/version_*")), "a refused run leaves no run directory"


# ------------------------------------------------------------------ --ckpt_path last launched twice at once


def _planner(runs: Path, name: str, barrier: Path | None = None) -> "subprocess.Popen":
    """A process that plans a fresh ``--ckpt_path last`` fit of ``name`` (as train.py's rank 0 does), prints the
    outcome and holds on to it until its stdin closes."""
    import subprocess
    import sys

    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; from cli.run_dirs import RunDirBusy, plan_run\n"
        f"barrier = {str(barrier) if barrier else None!r}\n"
        "print('ready', flush=True)\n"
        "while barrier and not Path(barrier).exists(): time.sleep(0.0005)\n"
        f"try: print('planned', plan_run('fit', {str(runs)!r}, {name!r}, 'last').run_dir, flush=True)\n"
        "except RunDirBusy as exc: print('busy', exc, flush=True)\n"
        "sys.stdin.read()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_ckpt_path_last_is_refused_while_the_run_it_means_has_started_but_saved_nothing(batches_dir: Path, tmp_path: Path) -> None:
    from cli.run_dirs import RunDirBusy

    runs = tmp_path / "runs"
    first = _planner(runs, "new")
    try:
        assert first.stdout.readline().strip() == "ready"
        assert first.stdout.readline().split() == ["planned", str(runs / "new" / "version_0")]
        with pytest.raises(RunDirBusy, match=f"version_0 is in use by process {first.pid}"):
            run_cli("fit", *base_args(batches_dir, runs, "--run_name", "new", "--ckpt_path", "last", "--trainer.max_steps", "1"))
        assert [p.name for p in (runs / "new").iterdir()] == ["version_0"], "not started fresh beside the first launch"
    finally:
        first.communicate("")


def test_planning_waits_for_the_launch_lock(tmp_path: Path) -> None:
    """The decision and the run directory's lock are taken under one launch lock, so no other launch plans between them."""
    import subprocess
    import sys
    import threading

    from cli.run_dirs import plan_run, unlock_run_dir

    runs = tmp_path / "runs"
    runs.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", str(runs / ".launch.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    plans = []
    try:
        assert holder.stdout.readline().strip() == "held"
        planner = threading.Thread(target=lambda: plans.append(plan_run("fit", runs, "w", "last")))
        planner.start()
        planner.join(timeout=1.0)
        assert planner.is_alive() and not (runs / "w").exists(), "planned while another launch held the launch lock"
    finally:
        holder.communicate("")
    planner.join(timeout=30)
    assert plans and plans[0].run_dir == runs / "w" / "version_0"
    unlock_run_dir(plans[0].run_dir)


def test_two_launches_of_ckpt_path_last_at_the_same_moment_start_one_run(tmp_path: Path) -> None:
    runs, barrier = tmp_path / "runs", tmp_path / "go"
    launches = [_planner(runs, "same", barrier) for _ in range(2)]
    try:
        assert [p.stdout.readline().strip() for p in launches] == ["ready", "ready"]
        barrier.touch()
        outcomes = sorted(p.stdout.readline().split()[0] for p in launches)
        assert outcomes == ["busy", "planned"], outcomes
        assert [p.name for p in (runs / "same").iterdir()] == ["version_0"]
    finally:
        for p in launches:
            p.communicate("")
