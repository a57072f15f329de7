"""One options path: what a cell says beats %config, which beats NBP_*, which beats defaults."""

from __future__ import annotations

import pytest

from nbp_jupyter import api
from nbp_jupyter.errors import ConfigError
from nbp_jupyter.options import Options


def _prepared(cell: Options, configured: Options = Options()):
    return api.prepare_options("a fox", cell.over(configured))


def test_each_source_wins_over_the_next(home, monkeypatch):
    """A %config default would override what the cell asked, or the env what %config set."""
    monkeypatch.setenv("NBP_MODEL", "env-model")
    monkeypatch.setenv("NBP_TIME_SCALE", "0.5")
    request, settings, _ = _prepared(Options(size="4K"),
                                     Options(size="2K", aspect="16:9", model="conf-model"))
    assert (request.size, request.aspect, settings.model) == ("4K", "16:9", "conf-model")
    assert settings.time_scale == 0.5  # nobody said: the environment
    request, settings, _ = _prepared(Options(), Options())
    assert (request.size, request.aspect, settings.model) == ("1K", "1:1", "env-model")


def test_a_configured_fallback_fits_the_size_but_a_cells_is_taken_as_written(home):
    """Nbp.fallback = '2K, 1K' would send a 1K cell up to 2K; a cell's own list would be cut."""
    configured = Options(fallback="2K, 1K")
    _, _, policy = _prepared(Options(size="1K"), configured)
    assert [r.label() for r in policy.ladder] == ["1K"]
    _, _, policy = _prepared(Options(size="4K"), configured)
    assert [r.label() for r in policy.ladder] == ["4K", "2K", "1K"]
    _, _, policy = _prepared(Options(size="1K", fallback="2K"), configured)
    assert [r.label() for r in policy.ladder] == ["1K", "2K"]
    _, _, policy = _prepared(Options(size="4K", fallback=False), configured)
    assert [r.label() for r in policy.ladder] == ["4K"]


def test_unknown_options_are_one_line_errors(home):
    """A typo such as sise='4K' would be ignored and the image made at 1K."""
    with pytest.raises(ConfigError, match="unknown option 'sise'"):
        api.prepare("a fox", sise="4K")
    with pytest.raises(TypeError, match="sise"):
        api.generate("a fox", sise="4K")


def test_a_single_reference_path_is_one_image_not_its_letters(home, tmp_path):
    """images='ref.png' would be read as the files 'r', 'e', 'f'..."""
    from PIL import Image

    path = tmp_path / "ref.png"
    Image.new("RGB", (8, 8)).save(path)
    request, _, _ = api.prepare("a fox", images=str(path))
    assert len(request.images) == 1
