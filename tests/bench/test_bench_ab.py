"""bench/proxy_bench_ab.py's choice of base: some files from a revision, or the whole package."""

from __future__ import annotations

import pytest

from bench.proxy_bench_ab import main


@pytest.mark.parametrize("argv", [[], ["proxy/app.py", "--whole"]])
def test_the_base_is_named_files_or_the_whole_package_not_both_or_neither(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "--whole" in capsys.readouterr().err


def test_only_files_under_proxy_can_be_compared(capsys):
    with pytest.raises(SystemExit):
        main(["README.md"])
    assert "only files under proxy/" in capsys.readouterr().err
