"""The benchmark machinery (``poolnd bench``) on tiny cases: structure, not speed."""

import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

import poolnd
from poolnd import bench, cli

TINY = (2, 3, 12, 12)


def _libraries(**missing):
    libraries = bench.load_libraries()
    libraries.update(missing)
    return libraries


class FakeClock:
    """A clock that moves only when a runner says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def runner(self, seconds):
        def make(lib, data):
            durations = iter(seconds * 10)

            def run():
                self.now += next(durations)
            return run
        return make


def test_speedups_are_the_ratios_of_the_medians():
    pytest.importorskip("torch")
    clock = FakeClock()
    case = bench.Case("fake", TINY, "float32", poolnd=clock.runner([0.002, 0.004, 0.003]),
                      torch=clock.runner([0.009, 0.012, 0.006]))
    result = bench.run_case(case, 3, _libraries(mygrad=None), clock=clock)
    assert result["samples_ms"]["poolnd"] == pytest.approx([4.0, 3.0, 2.0])  # one untimed call
    assert result["ms"]["poolnd"] == pytest.approx(3.0)
    assert result["ms"]["torch"] == pytest.approx(9.0)
    assert result["ratios"]["torch"] == pytest.approx(3.0)
    assert result["fastest"] == "torch"  # the only peer timed
    assert "torch 9.00" in bench.table_row(result)


def test_each_median_and_ratio_comes_from_the_samples():
    case = bench.max2d_case("tiny k2", TINY, 2, 2)
    result = bench.run_case(case, 3, _libraries(), budget_s=1.0)
    ms = result["ms"]
    for column, taken in result["samples_ms"].items():
        assert 1 <= len(taken) <= 3
        assert ms[column] == pytest.approx(statistics.median(taken))
    for column in ("torch", "torch_cl", "mygrad", "numpy"):
        if ms[column] is not None:
            assert result["ratios"][column] == pytest.approx(ms[column] / ms["poolnd"])
    assert result["ratios"]["floor"] == pytest.approx(ms["poolnd"] / ms["floor"])


OPTIONAL = ("torch", "onnxruntime", "jax", "cv2", "skimage", "mygrad")


def test_missing_optional_libraries_are_skipped_cells_not_errors():
    case = bench.max2d_case("tiny k2", TINY, 2, 2)  # every peer pools 2x2 blocks of NCHW
    missing = _libraries(**dict.fromkeys(OPTIONAL))
    result = bench.run_case(case, 3, missing)
    for column in ("torch", "torch_cl", *bench.CHECKED, "mygrad"):
        assert result["ms"][column] is None
        assert result["ratios"][column] is None
        assert result["skipped"][column].startswith("not installed")
    for column in ("torch", *bench.CHECKED):
        assert "poolnd[bench]" in result["skipped"][column]
    assert result["ms"]["poolnd"] > 0 and result["ms"]["numpy"] > 0
    assert result["fastest"] == "numpy"
    text = bench.report({"machine": bench.machine(missing), "repeat": 3, "cases": [result]})
    assert "tiny k2" in text and "not installed" in text


def test_a_baseline_that_raises_is_a_skipped_cell():
    def broken(lib, x):
        raise ValueError("no such geometry")
    case = bench.Case("broken numpy", TINY, "float32",
                      poolnd=lambda lib, x: lambda: lib.max_pool2d(x, 2), numpy=broken)
    result = bench.run_case(case, 3, _libraries())
    assert result["skipped"]["numpy"] == "error: ValueError: no such geometry"
    assert result["skipped"]["torch"] == bench.NOT_APPLICABLE
    assert result["ms"]["numpy"] is None


def test_results_are_json_with_every_column():
    case_list = [bench.max2d_case("tiny k3 s2 p1", TINY, 3, 2, 1),
                 bench.max2d_case("tiny uint8", TINY, 2, 2, dtype="uint8")]
    results = bench.run(case_list, 3, _libraries(), budget_s=1.0, extras=False)
    again = json.loads(json.dumps(results))
    assert set(again) >= {"machine", "repeat", "cases"}
    assert [r["name"] for r in again["cases"]] == ["tiny k3 s2 p1", "tiny uint8"]
    for row in again["cases"]:
        assert set(row["ms"]) == set(bench.COLUMNS)
        assert set(row["ratios"]) == set(bench.COLUMNS[1:])
        assert set(row["skipped"]) | set(row["samples_ms"]) == set(bench.COLUMNS)
        assert row["fastest"] in bench.PEERS
    assert again["cases"][0]["skipped"]["mygrad"] == bench.NOT_APPLICABLE  # padding
    lines = bench.report(results).splitlines()
    assert any(line.startswith("tiny uint8") for line in lines)


@pytest.mark.parametrize("name", ["k2", "k3 s2 p1", "nhwc", "3d", "1d", "avg"])
def test_numpy_baselines_compute_what_poolnd_computes(name):
    x = bench.make_input((2, 3, 8, 8, 8), "float32")
    made = {
        "k2": (bench._numpy_max(2, 2), lambda a: poolnd.max_pool2d(a, 2)),
        "k3 s2 p1": (bench._numpy_max(3, 2, 1), lambda a: poolnd.max_pool2d(a, 3, 2, 1)),
        "nhwc": (bench._numpy_max(3, 2, 1, axes=(1, 2)),
                 lambda a: poolnd.max_pool(a, (3, 3), 2, 1, axes=(1, 2))),
        "3d": (bench._numpy_max(2, 2, axes=(-3, -2, -1)), lambda a: poolnd.max_pool3d(a, 2)),
        "1d": (bench._numpy_max(4, 4, axes=(-1,)), lambda a: poolnd.max_pool1d(a, 4)),
        "avg": (bench._numpy_avg(3, 2, 1), lambda a: poolnd.avg_pool2d(a, 3, 2, 1)),
    }
    baseline, ours = made[name]
    np.testing.assert_allclose(baseline(np, x)(), ours(x), rtol=1e-6, atol=1e-6)


def test_registry_names_are_unique_and_quick_inputs_are_smaller():
    full, quick = bench.cases(), bench.cases(quick=True)
    assert len({c.name for c in full}) == len(full)
    assert [c.name for c in full] == [c.name for c in quick]
    assert {bench.BATCH_ONE, bench.MEMORY_CASE} <= {c.name for c in full}
    for big, small in zip(full, quick):
        assert np.prod(small.shape) <= np.prod(big.shape)


def test_thread_scaling_compares_one_thread_with_two(monkeypatch):
    """The two-thread runs split even a call too small for poolnd's own rule to split
    (otherwise the row compares one thread with one), and the rule is back after it."""
    submitted = []
    real_submit = ThreadPoolExecutor.submit

    def counting_submit(pool, *args, **kwargs):
        submitted.append(1)
        return real_submit(pool, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counting_submit)
    case = bench.max2d_case("tiny", TINY, 3, 2, 1)
    result = bench.thread_scaling(case, 3)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert result["ratio"] == pytest.approx(result["ms_1_thread"] / result["ms_2_threads"])
    assert submitted, "the two-thread runs ran on one thread"
    submitted.clear()
    case.poolnd(poolnd, bench.make_input(case.shape, case.dtype))()
    assert not submitted, "a small call is split after the row too"


def test_memory_probe_reports_poolnd_and_skips_a_missing_torch():
    result = bench.measure_memory(True, _libraries(torch=None))
    assert result["torch"]["skipped"].startswith("not installed")
    assert "error" not in result["poolnd"], result["poolnd"]
    assert result["poolnd"]["tracemalloc_peak_mib"] > 0
    assert "MiB" in "\n".join(bench.report_extras({"memory": result}))


def test_bench_and_tour_do_not_load_torch_or_matplotlib_until_asked():
    code = ("import sys, poolnd, poolnd.cli, poolnd.bench, contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    poolnd.cli.main(['tour'])\n"
            "print(sorted({'torch', 'matplotlib', 'mygrad', 'onnx', 'onnxruntime', 'jax', "
            "'cv2', 'skimage'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_plot_without_matplotlib_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert cli.main(["bench", "--plot", str(tmp_path / "speed.png")]) == 2
    assert "pip install 'poolnd[bench]'" in capsys.readouterr().err
    assert not (tmp_path / "speed.png").exists()


def test_bad_thread_count_is_refused_before_any_work(capsys):
    assert cli.main(["bench", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    case_list = [bench.max2d_case("tiny k2", TINY, 2, 2)]
    results = bench.run(case_list, 3, _libraries(), budget_s=1.0, extras=False)
    bench.plot(results, str(tmp_path / "speed.png"))
    assert (tmp_path / "speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the peers: each one checked against poolnd before it is timed ---------------------------

def _installed(column):
    return pytest.importorskip(bench.LIBRARY[column])


@pytest.mark.parametrize("column", bench.CHECKED)
def test_a_peer_that_disagrees_with_poolnd_is_a_skipped_cell_never_timed(column):
    _installed(column)
    shape = (2, 3, 8, 8)
    # the peer averages the 2x2 blocks that poolnd takes the maximum of
    wrong = bench.peers(bench.Pool("avg", 2), shape, "float32")[column]
    case = bench.Case("wrong peer", shape, "float32",
                      poolnd=lambda lib, x: partial(lib.max_pool2d, x, 2), **{column: wrong})
    result = bench.run_case(case, 3, _libraries(), budget_s=0.1)
    assert result["skipped"][column].startswith("disagrees with poolnd: ")
    assert "values differ" in result["skipped"][column]
    assert result["ms"][column] is None and column not in result["samples_ms"]


PEER_POOLS = {
    "max k2": (bench.Pool("max", 2), (2, 3, 8, 8), "float32"),
    "max k3 s2 p1": (bench.Pool("max", 3, 2, 1), (2, 3, 9, 9), "float32"),
    "avg k3 s2 p1": (bench.Pool("avg", 3, 2, 1), (2, 3, 9, 9), "float32"),
    "global average": (bench.Pool("avg", None), (2, 3, 7, 7), "float32"),
    "max k5 s1 p2": (bench.Pool("max", 5, 1, 2), (2, 3, 12, 12), "float32"),
    "avg k5 s1 p2": (bench.Pool("avg", 5, 1, 2), (2, 3, 12, 12), "float32"),
    "max k2 uint8": (bench.Pool("max", 2), (2, 3, 8, 8), "uint8"),
    "max 3d k2": (bench.Pool("max", 2, axes=(-3, -2, -1)), (1, 2, 4, 4, 4), "float32"),
    "max 1d k4": (bench.Pool("max", 4, axes=(-1,)), (2, 3, 16), "float32"),
    "max NHWC": (bench.Pool("max", 3, 2, 1, axes=(1, 2)), (2, 9, 9, 4), "float32"),
    "avg HWC uint8": (bench.Pool("avg", 2, axes=(0, 1)), (8, 6, 3), "uint8"),
    "max stack uint16": (bench.Pool("max", 2, axes=(1, 2)), (3, 8, 6), "uint16"),
}


def _poolnd_computing(pool, dtype):
    kwargs = bench.integer_average(dtype) if pool.kind == "avg" and dtype != "float32" else {}

    def make(lib, x):
        window, stride, padding = (tuple(g[a % x.ndim] for a in pool.axes)
                                   for g in pool.geometry(x.shape))
        function = lib.max_pool if pool.kind == "max" else lib.avg_pool
        return partial(function, x, window, stride, padding, axes=pool.axes, **kwargs)
    return make


@pytest.mark.parametrize("name", PEER_POOLS)
def test_peers_agree_with_poolnd_where_they_are_offered(name):
    pool, shape, dtype = PEER_POOLS[name]
    case = bench.with_peers(bench.Case(name, shape, dtype, poolnd=_poolnd_computing(pool, dtype)),
                            pool)
    offered = [column for column in bench.CHECKED if getattr(case, column) is not None]
    assert offered
    result = bench.run_case(case, 1, _libraries(), budget_s=0.1)
    for column in offered:
        reason = result["skipped"].get(column, "")
        assert reason.startswith("not installed") or result["ms"][column] > 0, (column, reason)


def test_the_equality_check_is_bit_for_bit_for_max_and_to_rounding_for_averages():
    values = np.array([0.0, 1.5, 2.5], np.float32)
    assert bench.disagreement(values, values.copy(), exact=True) is None
    assert bench.disagreement(values, -values, exact=True) == "3 of 3 values differ"  # -0.0 too
    assert bench.disagreement(values, values.astype(np.float64), exact=True).startswith("dtype")
    assert bench.disagreement(values, values[:2], exact=True).startswith("shape")
    assert bench.disagreement(values, values * (1 + 1e-6), exact=False) is None
    assert bench.disagreement(values, values + 1e-3, exact=False).startswith("3 of 3 values")
    rounded = np.array([0, 2, 2], np.uint8)  # half to even; halves up would give 0, 2, 3
    assert bench.disagreement(rounded, np.array([0, 2, 3], np.uint8), exact=False) is None
    assert bench.disagreement(rounded, np.array([0, 2, 4], np.uint8), exact=False) is not None
    assert bench.disagreement(values, rounded, exact=False) is None  # a float mean, rounded


def test_the_images_section_runs_quick_at_tiny_sizes():
    case_list = bench.image_cases(quick=True)
    assert len(case_list) == 2 * len(bench.IMAGES)
    for case, full in zip(case_list, bench.image_cases()):
        assert case.name == full.name and np.prod(case.shape) < np.prod(full.shape) / 100
    results = bench.run(case_list, 1, _libraries(), budget_s=0.1, extras=False)
    for row in results["cases"]:
        assert row["ms"]["poolnd"] > 0
        for column in ("opencv", "skimage"):
            reason = row["skipped"].get(column, "")
            assert reason.startswith("not installed") or row["ms"][column] > 0, (column, reason)
    assert "image uint8 HWC avg 2x2 -> " in bench.report(results)


def test_images_are_averaged_to_float64_where_avg_pool_has_no_integer_dtype(monkeypatch):
    original = poolnd.avg_pool

    def without_dtype(x, *args, dtype=None, **kwargs):
        if dtype is not None:
            raise TypeError("avg_pool() got an unexpected keyword argument 'dtype'")
        return original(x, *args, **kwargs)
    monkeypatch.setattr(poolnd, "avg_pool", without_dtype)
    bench.integer_average.cache_clear()
    try:
        case = bench.image_cases(quick=True)[0]
        assert case.name == "image uint8 HWC avg 2x2 -> float64 (no dtype=)"
        result = bench.run_case(case, 1, _libraries(), budget_s=0.1)
    finally:
        bench.integer_average.cache_clear()  # poolnd's own avg_pool again
    for column in ("opencv", "skimage"):  # within 0.5 of the float64 means
        reason = result["skipped"].get(column, "")
        assert reason.startswith("not installed") or result["ms"][column] > 0, (column, reason)
