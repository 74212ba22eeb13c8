"""The `minseg` command: sub-commands, exit status, one-line errors."""
import subprocess
import sys

from minseg import cli


def test_gradcheck_command_prints_table(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "gradient checks passed" in out


def test_bad_arguments_give_one_line_and_status_2():
    proc = subprocess.run([sys.executable, "-m", "minseg.cli", "nonsense"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("minseg: error:")
    assert "Traceback" not in proc.stderr
