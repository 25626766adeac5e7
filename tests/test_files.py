"""``poolnd pool`` and ``poolnd pyramid``: every format, the geometry flags, --force,
one-line errors with exit status 2, and a run on a dask.distributed scheduler."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

import poolnd
from poolnd import cli, files

pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")


def _zarr_input(path, data, chunks):
    array = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, chunks=chunks)
    array[...] = data
    return path


@pytest.fixture
def volume():
    return np.random.default_rng(0).standard_normal((5, 23, 26)).astype(np.float32)


def _pool(*argv):
    return cli.main(["pool", *map(str, argv), "--no-progress"])


def _pyramid(*argv):
    return cli.main(["pyramid", *map(str, argv), "--no-progress"])


# --------------------------------------------------------------------------- pool


@pytest.mark.parametrize("flags, call", [
    (["--kernel", "3", "3", "--stride", "2", "--padding", "same"],
     lambda x: poolnd.max_pool(x, (3, 3), 2, "same")),
    (["--op", "avg", "--kernel", "2", "3", "--padding", "1:0", "0:2", "--ceil-mode",
      "--dilation", "2", "1"],
     lambda x: poolnd.avg_pool(x, (2, 3), None, ((1, 0), (0, 2)), (2, 1), True)),
    (["--kernel", "2", "--axes", "0", "2"],
     lambda x: poolnd.max_pool(x, 2, axes=(0, 2))),
    (["--kernel", "2"],  # one value and no --axes: every axis
     lambda x: poolnd.max_pool(x, (2, 2, 2))),
    (["--op", "lp", "--norm-type", "3", "--kernel", "3", "--stride", "1", "--axes", "-1"],
     lambda x: poolnd.lp_pool(np.abs(x), 3, (3,), 1)),
])
def test_pool_npy_equals_the_library(tmp_path, volume, flags, call):
    source = tmp_path / "in.npy"
    data = np.abs(volume) if "lp" in flags else volume
    np.save(source, data)
    assert cli.main(["pool", str(source), str(tmp_path / "out.npy"), *flags,
                     "--no-progress"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), call(data))
    np.testing.assert_array_equal(np.load(source), data)  # the input is untouched


def test_pool_zarr_to_zarr_chunk_by_chunk(tmp_path):
    data = np.random.default_rng(1).integers(0, 1000, (40, 37, 50)).astype(np.uint16)
    source = _zarr_input(tmp_path / "in.zarr", data, (16, 16, 16))
    assert _pool(source, tmp_path / "out.zarr", "--op", "avg", "--kernel", "2",
                 "--ceil-mode") == 0
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert out.chunks == (8, 8, 8)  # the pooled chunks, regular as Zarr needs
    assert out.dtype == np.uint16  # an average of integers keeps their dtype, rounded
    np.testing.assert_array_equal(out[...], np.rint(poolnd.avg_pool(data, (2, 2, 2),
                                                                    ceil_mode=True)))
    assert _pool(source, tmp_path / "out.npy", "--kernel", "3", "--stride", "2",
                 "--padding", "1") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  poolnd.max_pool(data, (3, 3, 3), 2, 1))


def test_pool_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = np.random.default_rng(2).integers(0, 60000, (30, 31)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", data)
    assert _pool(tmp_path / "in.tif", tmp_path / "out.tiff", "--op", "avg", "--kernel",
                 "2") == 0
    got = tifffile.imread(tmp_path / "out.tiff")
    assert got.dtype == np.uint16  # an average of integers keeps their dtype, rounded
    np.testing.assert_array_equal(got, np.rint(poolnd.avg_pool(data, (2, 2))))


def _tiff(path, data, axes=None):
    tifffile = pytest.importorskip("tifffile")
    if axes is None:
        tifffile.imwrite(path, data)
    else:  # grey values, not RGB planes, whatever the length of C
        tifffile.imwrite(path, data, metadata={"axes": axes}, photometric="minisblack")
    return path


def _tiff_axes(path):
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        return tiff.series[0].axes, tiff.series[0].asarray()


@pytest.mark.parametrize("shape, axes, flags, kernel, pooled", [
    ((40, 60, 3), None, ["--kernel", "2"], 2, (0, 1)),  # RGB: YXS
    ((40, 60, 3), None, ["--kernel", "2", "3"], (2, 3), (0, 1)),
    ((40, 60, 4), None, ["--kernel", "2", "--axes", "0", "1", "2"], 2, (0, 1, 2)),  # as asked
    ((5, 40, 60), None, ["--kernel", "2"], 2, (1, 2)),  # pages of unknown meaning: QYX
    ((5, 40, 60), "IYX", ["--kernel", "2"], 2, (1, 2)),
    ((6, 40, 60), "ZYX", ["--kernel", "2"], 2, (0, 1, 2)),  # a volume
    ((6, 40, 60), "ZYX", ["--kernel", "2", "3"], (2, 3), (1, 2)),
    ((2, 6, 3, 20, 30), "TZCYX", ["--kernel", "2"], 2, (1, 3, 4)),
    ((4, 20, 30, 3), "QYXS", ["--kernel", "3"], 3, (1, 2)),
])
def test_pool_tiff_pools_the_axes_the_file_names(tmp_path, shape, axes, flags, kernel, pooled):
    data = np.random.default_rng(9).integers(0, 255, shape).astype(np.uint8)
    source = _tiff(tmp_path / "in.tif", data, axes)
    written_axes, _ = _tiff_axes(source)
    assert _pool(source, tmp_path / "out.tif", *flags) == 0
    got_axes, got = _tiff_axes(tmp_path / "out.tif")
    assert got_axes == written_axes  # the output keeps the input's axes
    np.testing.assert_array_equal(got, poolnd.max_pool(data, kernel, axes=pooled))


def test_pool_tiff_needs_axes_for_more_kernel_values_than_space_axes(tmp_path, capsys):
    source = _tiff(tmp_path / "in.tif", np.zeros((40, 60, 3), np.uint8))
    assert _pool(source, tmp_path / "out.npy", "--kernel", "2", "2", "2") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "YXS" in line and "--axes" in line
    assert not (tmp_path / "out.npy").exists()


def test_pyramid_of_a_tiff_names_its_axes(tmp_path):
    data = np.random.default_rng(10).integers(0, 255, (40, 60, 3)).astype(np.uint8)
    source = _tiff(tmp_path / "rgb.tif", data)
    assert _pyramid(source, tmp_path / "p.zarr", "--levels", "3") == 0
    group, levels = _levels(tmp_path / "p.zarr")
    # stored in NGFF's order, colours before space
    assert [level.shape for level in levels] == [(3, 40, 60), (3, 20, 30), (3, 10, 15)]
    np.testing.assert_array_equal(levels[0], data.transpose(2, 0, 1))
    (multiscale,) = group.attrs["ome"]["multiscales"]
    assert multiscale["axes"] == [{"name": "c", "type": "channel"},
                                  {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    assert multiscale["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 2.0]

    stack = np.random.default_rng(11).integers(0, 255, (2, 5, 3, 16, 20)).astype(np.uint16)
    source = _tiff(tmp_path / "stack.tif", stack, "TZCYX")
    assert _pyramid(source, tmp_path / "q.zarr", "--levels", "2") == 0
    group, levels = _levels(tmp_path / "q.zarr")
    assert levels[1].shape == (2, 3, 3, 8, 10)  # TZCYX stored as t, c, z, y, x
    np.testing.assert_array_equal(levels[0], stack.transpose(0, 2, 1, 3, 4))
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert axes == [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space"}, {"name": "y", "type": "space"},
                    {"name": "x", "type": "space"}]

    pages = _tiff(tmp_path / "pages.tif", stack[0, :, 0])  # QYX: the pages stay
    assert _pyramid(pages, tmp_path / "r.zarr", "--levels", "2") == 0
    group, levels = _levels(tmp_path / "r.zarr")
    assert levels[1].shape == (5, 8, 10)
    # a stack's axis is not space unless pooled: a name and a type of its own
    assert group.attrs["ome"]["multiscales"][0]["axes"][0] == {"name": "dim_0", "type": "custom"}


def test_pool_png_pools_height_and_width_and_rounds_back(tmp_path):
    image = pytest.importorskip("PIL.Image")
    data = np.random.default_rng(3).integers(0, 256, (30, 41, 3)).astype(np.uint8)
    image.fromarray(data).save(tmp_path / "in.png")
    assert _pool(tmp_path / "in.png", tmp_path / "out.png", "--op", "avg", "--kernel", "3",
                 "--stride", "2", "--padding", "1") == 0
    with image.open(tmp_path / "out.png") as picture:
        got = np.asarray(picture)
    want = np.rint(poolnd.avg_pool(data, (3, 3), 2, 1, axes=(0, 1))).astype(np.uint8)
    np.testing.assert_array_equal(got, want)


def test_pool_jpeg(tmp_path):
    image = pytest.importorskip("PIL.Image")
    data = np.random.default_rng(4).integers(0, 256, (32, 48)).astype(np.uint8)
    image.fromarray(data).save(tmp_path / "in.jpg", quality=100)
    assert _pool(tmp_path / "in.jpg", tmp_path / "out.npy", "--kernel", "4") == 0
    with image.open(tmp_path / "in.jpg") as picture:
        decoded = np.asarray(picture)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), poolnd.max_pool(decoded, (4, 4)))
    assert _pool(tmp_path / "in.jpg", tmp_path / "out.jpeg", "--kernel", "4") == 0
    with image.open(tmp_path / "out.jpeg") as picture:
        assert picture.size == (12, 8)


def test_existing_output_is_replaced_only_with_force(tmp_path, volume, capsys):
    np.save(tmp_path / "in.npy", volume)
    np.save(tmp_path / "out.npy", np.zeros(3))
    assert _pool(tmp_path / "in.npy", tmp_path / "out.npy", "--kernel", "2") == 2
    assert "exists; pass --force" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.zeros(3))
    assert _pool(tmp_path / "in.npy", tmp_path / "out.npy", "--kernel", "2", "--force") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  poolnd.max_pool(volume, (2, 2, 2)))
    # a Zarr store (a directory) likewise
    (tmp_path / "out.zarr").mkdir()
    assert _pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2") == 2
    assert _pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--force") == 0
    assert zarr.open_array(str(tmp_path / "out.zarr"), mode="r").shape == (2, 11, 13)


def test_a_failed_run_leaves_no_output(tmp_path, volume):
    pytest.importorskip("PIL.Image")
    np.save(tmp_path / "in.npy", volume)
    assert _pool(tmp_path / "in.npy", tmp_path / "out.png", "--op", "avg", "--kernel", "2") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def _run(*argv):
    return subprocess.run([sys.executable, "-m", "poolnd", *map(str, argv)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, message", [
    (["pool", "{tmp}/missing.npy", "{tmp}/out.npy", "--kernel", "2"], "does not exist"),
    (["pool", "{tmp}/in.npy", "{tmp}/out.bmp", "--kernel", "2"], "unsupported format '.bmp'"),
    (["pool", "{tmp}/in.npy", "{tmp}/out.npy", "--kernel", "0"], "kernel_size=0"),
    (["pool", "{tmp}/in.npy", "{tmp}/out.npy", "--kernel", "2", "--axes", "5"],
     "axis 5 is out of range"),
    (["pool", "{tmp}/in.npy", "{tmp}/out.npy", "--kernel", "9", "9", "9"], "output would be"),
    (["pool", "{tmp}/in.npy", "{tmp}/out.npy", "--kernel", "2", "--padding", "x"],
     "--padding x"),
    (["pool", "{tmp}/in.npy", "{tmp}/out.npy", "--kernel", "2", "--padding", "1:2:2"],
     "--padding 1:2:2"),
    (["pool", "{tmp}/group.zarr/0", "{tmp}/group.zarr", "--kernel", "2", "--force"],
     "contains INPUT"),
    (["pool", "{tmp}/in.npy", "{tmp}/no/out.npy", "--kernel", "2"], "does not exist"),
    (["pool", "{tmp}/in.npy", "{tmp}/in.npy", "--kernel", "2", "--force"], "is INPUT"),
    (["pool", "{tmp}/group.zarr", "{tmp}/out.npy", "--kernel", "2"], "is a Zarr group"),
    (["pool", "{tmp}/in.txt", "{tmp}/out.npy", "--kernel", "2"], "unsupported format '.txt'"),
    (["pyramid", "{tmp}/in.npy", "{tmp}/p.zarr", "--levels", "0"], "--levels 0"),
    (["pyramid", "{tmp}/in.npy", "{tmp}/p.zarr", "--levels", "2", "--factor", "1"],
     "--factor 1"),
])
def test_mistakes_are_one_line_and_exit_2(tmp_path, argv, message):
    np.save(tmp_path / "in.npy", np.zeros((4, 6, 6), np.float32))
    (tmp_path / "in.txt").write_text("not an array")
    zarr.open_group(str(tmp_path / "group.zarr"), mode="w").create_array(
        "0", shape=(4,), dtype="f4")
    result = _run(*(a.format(tmp=tmp_path) for a in argv))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"poolnd {argv[0]}: error: ") and message in lines[0]
    assert not (tmp_path / "out.npy").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(files, "SCHEDULER_TIMEOUT_S", 1)
    np.save(tmp_path / "in.npy", np.zeros((4, 6, 6), np.float32))
    assert _pool(tmp_path / "in.npy", tmp_path / "out.npy", "--kernel", "2", "--scheduler",
                 "tcp://127.0.0.1:1") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("poolnd pool: error: cannot reach the scheduler at")


def test_argparse_mistakes_exit_2_without_traceback(tmp_path):
    result = _run("pool", tmp_path / "in.npy", tmp_path / "out.npy", "--kernel", "two")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid int value: 'two'" in result.stderr


def test_the_command_modules_import_no_dask():
    code = ("import sys, poolnd.cli, poolnd.files; "
            "print([m for m in sys.modules if m.split('.')[0] in ('dask', 'zarr', 'PIL')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_progress_bar_shows_long_work(tmp_path, volume, capsys, monkeypatch):
    monkeypatch.setattr(files, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal
    np.save(tmp_path / "in.npy", volume)
    assert cli.main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.npy"),
                     "--kernel", "2"]) == 0
    err = capsys.readouterr().err
    assert "poolnd pool: (5, 23, 26) -> (2, 11, 13) float32" in err
    assert "100%" in err


# --------------------------------------------------------------------------- pyramid


def _levels(path):
    group = zarr.open_group(str(path), mode="r")
    return group, [group[str(i)][...] for i in range(len(list(group.array_keys())))]


def test_pyramid_levels_pool_the_level_above_with_ceil_mode(tmp_path):
    data = np.random.default_rng(5).standard_normal((21, 34, 19)).astype(np.float32)
    source = _zarr_input(tmp_path / "in.zarr", data, (8, 8, 8))
    assert _pyramid(source, tmp_path / "p.zarr", "--levels", "4") == 0
    group, levels = _levels(tmp_path / "p.zarr")
    assert [level.shape for level in levels] == [(21, 34, 19), (11, 17, 10), (6, 9, 5),
                                                 (3, 5, 3)]
    expected = data
    for level in levels:
        np.testing.assert_array_equal(level, expected)
        expected = poolnd.avg_pool(expected, (2, 2, 2), ceil_mode=True)
    assert group["1"].chunks == (8, 8, 8)  # every level keeps the input's chunk shape
    (multiscale,) = group.attrs["ome"]["multiscales"]
    assert group.attrs["ome"]["version"] == "0.5"
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert [d["path"] for d in multiscale["datasets"]] == ["0", "1", "2", "3"]
    assert multiscale["datasets"][2]["coordinateTransformations"] == [
        {"type": "scale", "scale": [4.0, 4.0, 4.0]},
        {"type": "translation", "translation": [1.5, 1.5, 1.5]}]
    json.dumps(dict(group.attrs))  # plain JSON


def test_pyramid_max_factor_axes_and_integer_dtype(tmp_path):
    data = np.random.default_rng(6).integers(0, 255, (3, 20, 31)).astype(np.uint8)
    np.save(tmp_path / "in.npy", data)
    assert _pyramid(tmp_path / "in.npy", tmp_path / "p.zarr", "--levels", "3", "--factor", "3",
                    "--axes", "1", "2", "--op", "max") == 0
    group, levels = _levels(tmp_path / "p.zarr")
    np.testing.assert_array_equal(levels[2], poolnd.max_pool(data, (9, 9), ceil_mode=True,
                                                             axes=(1, 2)))
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert axes == [{"name": "dim_0", "type": "custom"}, {"name": "y", "type": "space"},
                    {"name": "x", "type": "space"}]
    # averages of integers are rounded back to the input's dtype, level by level
    assert _pyramid(tmp_path / "in.npy", tmp_path / "q.zarr", "--levels", "2") == 0
    _, levels = _levels(tmp_path / "q.zarr")
    assert levels[1].dtype == np.uint8
    np.testing.assert_array_equal(levels[1], np.rint(poolnd.avg_pool(
        data, (2, 2, 2), ceil_mode=True)).astype(np.uint8))


def test_pyramid_of_an_image_keeps_its_colours(tmp_path):
    image = pytest.importorskip("PIL.Image")
    data = np.random.default_rng(7).integers(0, 256, (25, 40, 3)).astype(np.uint8)
    image.fromarray(data).save(tmp_path / "in.png")
    assert _pyramid(tmp_path / "in.png", tmp_path / "p.zarr", "--levels", "3") == 0
    group, levels = _levels(tmp_path / "p.zarr")
    assert [level.shape for level in levels] == [(3, 25, 40), (3, 13, 20), (3, 7, 10)]
    assert group.attrs["ome"]["multiscales"][0]["axes"][0] == {"name": "c", "type": "channel"}


def test_pyramid_on_a_distributed_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    data = np.random.default_rng(8).standard_normal((2, 30, 44)).astype(np.float32)
    source = _zarr_input(tmp_path / "in.zarr", data, (1, 16, 16))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        assert _pyramid(source, tmp_path / "p.zarr", "--levels", "3", "--axes", "1", "2",
                        "--scheduler", cluster.scheduler_address) == 0
        assert _pool(source, tmp_path / "out.npy", "--kernel", "3", "--stride", "2",
                     "--axes", "1", "2", "--scheduler", cluster.scheduler_address) == 0
    _, levels = _levels(tmp_path / "p.zarr")
    np.testing.assert_array_equal(levels[2], poolnd.avg_pool(
        poolnd.avg_pool(data, (2, 2), ceil_mode=True), (2, 2), ceil_mode=True))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  poolnd.max_pool(data, (3, 3), 2))


# --------------------------------------------------------------------------- the first hour


def test_no_progress_bar_when_standard_error_is_not_a_terminal(tmp_path, volume, capsys,
                                                                monkeypatch):
    monkeypatch.setattr(files, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # a log file or a pipe
    np.save(tmp_path / "in.npy", volume)
    assert cli.main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.npy"),
                     "--kernel", "2"]) == 0
    # the status line only, no bar redrawn into the log
    assert capsys.readouterr().err == "poolnd pool: (5, 23, 26) -> (2, 11, 13) float32\n"


def test_no_progress_prints_nothing(tmp_path, volume, capsys):
    np.save(tmp_path / "in.npy", volume)
    assert _pool(tmp_path / "in.npy", tmp_path / "out.npy", "--kernel", "2") == 0
    assert _pyramid(tmp_path / "in.npy", tmp_path / "p.zarr", "--levels", "2") == 0
    assert capsys.readouterr().err == ""


def test_the_status_line_names_the_dtype_written(tmp_path, capsys):
    image = pytest.importorskip("PIL.Image")
    data = np.random.default_rng(12).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    image.fromarray(data).save(tmp_path / "in.png")
    assert cli.main(["pool", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--op", "avg",
                     "--kernel", "2"]) == 0
    # a PNG average is written as uint8, and said so (it once said float64); beside it at
    # most the notice that kernels compile, on a cache that lacks them
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line != "poolnd pool: compiling kernels (first use only; `poolnd compile` does "
                        "it ahead) ..."]
    assert lines == ["poolnd pool: (30, 40, 3) -> (15, 20, 3) uint8"]


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"poolnd {poolnd.__version__}\n"


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.bool_])
def test_pool_and_pyramid_agree_on_integer_averages(tmp_path, dtype):
    data = np.random.default_rng(13).integers(-3, 250, (6, 7, 9)).astype(dtype)
    np.save(tmp_path / "in.npy", data)
    assert _pool(tmp_path / "in.npy", tmp_path / "out.npy", "--op", "avg", "--kernel", "2",
                 "--ceil-mode") == 0
    assert _pyramid(tmp_path / "in.npy", tmp_path / "p.zarr", "--levels", "2") == 0
    pooled = np.load(tmp_path / "out.npy")
    _, levels = _levels(tmp_path / "p.zarr")
    assert pooled.dtype == levels[1].dtype == dtype  # both keep the input's dtype
    np.testing.assert_array_equal(pooled, levels[1])
    exact = poolnd.avg_pool(data, (2, 2, 2), ceil_mode=True)
    want = np.rint(exact) != 0 if dtype is np.bool_ else np.rint(exact).astype(dtype)
    np.testing.assert_array_equal(pooled, want)  # rounded half to even


@pytest.mark.parametrize("name", ["p.png", "p.tif", "p.npy", "p.JPG"])
def test_pyramid_refuses_an_output_named_as_a_file_format(tmp_path, name):
    np.save(tmp_path / "in.npy", np.zeros((4, 6, 6), np.float32))
    result = _run("pyramid", tmp_path / "in.npy", tmp_path / name, "--levels", "2")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "a pyramid is a Zarr group" in line and repr(str(tmp_path / "p.zarr")) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_pyramid_refuses_levels_past_the_one_that_is_a_single_element(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.ones((4, 6, 6), np.float32))
    # (4, 6, 6) -> (2, 3, 3) -> (1, 2, 2) -> (1, 1, 1): four levels, the last a single element
    assert _pyramid(tmp_path / "in.npy", tmp_path / "p.zarr", "--levels", "5") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--levels 5" in line and "at most 4 levels" in line and "(1, 1, 1)" in line
    assert not (tmp_path / "p.zarr").exists()
    assert _pyramid(tmp_path / "in.npy", tmp_path / "p.zarr", "--levels", "4") == 0
    _, levels = _levels(tmp_path / "p.zarr")
    assert levels[-1].shape == (1, 1, 1)
